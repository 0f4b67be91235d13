#!/usr/bin/env python3
"""Import cycles between the modules (files) of each crate of the workspace.

A module A imports B when A's code names a path into B: a `use` item, or a
`crate::`/`super::`/`self::` path inline. A path to a name that a module
only re-exports (`pub use inner::Name`) is followed to the module that
defines it, so a parent's re-exports do not tie it to every child. Test
modules (`#[cfg(test)] mod tests`) are not read: they may import anything.

Usage: scripts/module_cycles.py [CRATE_SRC_DIR ...]   (default: every crate)
Prints each cycle with the names that tie it; exits 1 if there is one.
"""
import re
import signal
import sys
from pathlib import Path

# Piped into `head`, stop quietly.
signal.signal(signal.SIGPIPE, signal.SIG_DFL)

ROOT = Path(__file__).resolve().parent.parent
CRATES = ["engine/src", "control-plane/src", "proto/src", "src"]
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """Code without comments, strings, and trailing #[cfg(test)] modules."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*\{", text)
    if m:
        text = text[: m.start()]
    return inline_modules(text)


def inline_modules(text):
    """Inside `mod name { ... }`, `super::` is the file's own module."""
    out, pos = [], 0
    for m in re.finditer(r"\bmod\s+" + IDENT + r"\s*\{", text):
        if m.start() < pos:
            continue
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        out.append(text[pos : m.end()])
        out.append(re.sub(r"\bsuper::", "self::", text[m.end() : i]))
        pos = i
    out.append(text[pos:])
    return "".join(out)


def modules(src):
    """Module path (tuple) -> file, for one crate."""
    out = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src).with_suffix("").parts
        if rel in (("lib",), ("main",)):
            path = ()
        elif rel[-1] == "mod":
            path = rel[:-1]
        else:
            path = rel
        out[path] = f
    return out


def expand(tree):
    """`a::{b, c::{d as e}, f::*}` -> [[a, b], [a, c, d], [a, f, *]], and the local names."""
    tree = re.sub(r"\s+as\s+" + IDENT, "", tree)  # `Name as Alias`: the name
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, s):
        depth, start, parts = 0, 0, []
        for i, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:i])
                start = i + 1
        parts.append(s[start:])
        for p in filter(None, parts):
            if "{" in p:
                head, rest = p.split("{", 1)
                walk(prefix + [x for x in head.split("::") if x], rest[:-1])
            else:
                segs = [x for x in p.split("::") if x]
                if segs == ["self"]:
                    out.append(prefix)
                else:
                    out.append(prefix + segs)

    walk([], tree)
    return out


USE = re.compile(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
INLINE = re.compile(r"(?<![A-Za-z0-9_:])((?:crate|super|self)(?:::" + IDENT + r")+)")


class Crate:
    def __init__(self, src):
        self.src = src
        self.mods = modules(src)
        self.code = {m: strip(f.read_text()) for m, f in self.mods.items()}
        self.reexports = {}
        for m, code in self.code.items():
            table = {}
            for pub, tree in USE.findall(code):
                if not pub:
                    continue
                for path in expand(tree):
                    if path and path[-1] != "*":
                        table[path[-1]] = path
            self.reexports[m] = table

    def absolute(self, here, segs):
        """A path as written in module `here` -> a path from the crate root."""
        segs = list(segs)
        if not segs:
            return None
        if segs[0] == "crate":
            return segs[1:]
        base = list(here)
        if segs[0] in ("self", "super"):
            while segs and segs[0] in ("self", "super"):
                if segs.pop(0) == "super":
                    if not base:
                        return None
                    base.pop()
            return base + segs
        if tuple(base + segs[:1]) in self.mods:
            return base + segs
        if tuple(segs[:1]) in self.mods and not base:
            return segs
        return None  # an external crate, or a name in scope

    def resolve(self, segs, depth=0):
        """Root path -> (module defining it, name) following re-exports."""
        for n in range(len(segs), -1, -1):
            m = tuple(segs[:n])
            if m in self.mods:
                rest = segs[n:]
                if rest and depth < 8 and rest[0] in self.reexports.get(m, {}):
                    target = self.absolute(m, self.reexports[m][rest[0]])
                    if target and target != segs:
                        return self.resolve(target + rest[1:], depth + 1)
                return m, (rest[0] if rest else "")
        return None

    def edges(self):
        out = {}
        for m, code in self.code.items():
            paths = []
            for pub, tree in USE.findall(code):
                for path in expand(tree):
                    root = self.absolute(m, path)
                    # A module's face: handing on a name of its own
                    # submodule is not an import of it.
                    if pub and root and tuple(root[: len(m) + 1])[:-1] == m and len(root) > len(m):
                        continue
                    paths.append(path)
            body = USE.sub("", code)
            paths += [p.split("::") for p in INLINE.findall(body)]
            for segs in paths:
                if segs and segs[-1] == "*":
                    segs = segs[:-1]
                root = self.absolute(m, segs)
                if root is None:
                    continue
                hit = self.resolve(root)
                if hit is None or hit[0] == m:
                    continue
                # A path into a module's own descendant, or to an
                # ancestor that merely holds it, is not an import.
                target = hit[0]
                if target == m[: len(target)] and not hit[1]:
                    continue
                out.setdefault(m, {}).setdefault(target, set()).add(hit[1] or "(module)")
        return out


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main():
    crates = sys.argv[1:] or CRATES
    found = 0
    for c in crates:
        crate = Crate(ROOT / c)
        edges = crate.edges()
        name = lambda m: str(crate.mods[m].relative_to(ROOT))
        comps = cycles(edges)
        print(f"{c}: {len(crate.mods)} modules, {len(comps)} import cycle(s)")
        for comp in comps:
            found += 1
            print(f"  cycle: {', '.join(name(m) for m in comp)}")
            for a in comp:
                for b, names in sorted(edges.get(a, {}).items()):
                    if b in comp:
                        print(f"    {name(a)} -> {name(b)}: {', '.join(sorted(names))}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
