//! A CPU quota on a node's process, through a cgroup of its own (v2
//! `cpu.max` where the unified hierarchy has the cpu controller, else v1
//! `cpu.cfs_quota_us`). The overload test uses it to give the node a small
//! share of the machine, so the load generator on the same two cores can
//! offer many times what the node sustains. Needs root, as the disk-fault
//! tests do; the test fails, saying so, without it.
use std::path::{Path, PathBuf};

pub struct CpuLimit {
    dir: PathBuf,
    /// Where the process goes back to before the cgroup is removed.
    parent_procs: PathBuf,
}

/// The period of the quota: the node runs at most `fraction` of each.
const PERIOD_US: u64 = 100_000;

fn cpu_root() -> Option<(PathBuf, bool)> {
    let v2 = Path::new("/sys/fs/cgroup");
    if std::fs::read_to_string(v2.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|w| w == "cpu"))
    {
        return Some((v2.to_path_buf(), true));
    }
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    v1.join("cpu.cfs_quota_us")
        .exists()
        .then(|| (v1.to_path_buf(), false))
}

impl CpuLimit {
    /// Limit process `pid` (all its threads) to `fraction` of one core.
    pub fn apply(pid: u32, fraction: f64) -> CpuLimit {
        let (root, v2) = cpu_root().expect(
            "no cgroup cpu controller at /sys/fs/cgroup (v2) or /sys/fs/cgroup/cpu (v1): the \
             overload test limits the node's CPU with one",
        );
        let dir = root.join(format!("quotad-test-{pid}"));
        let write = |file: &str, value: String| {
            let path = dir.join(file);
            std::fs::write(&path, &value).unwrap_or_else(|e| {
                panic!(
                    "writing {value:?} to {} failed (limiting a process's CPU needs root): {e}",
                    path.display()
                )
            })
        };
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("creating the cgroup {} (needs root): {e}", dir.display()));
        let quota = (PERIOD_US as f64 * fraction) as u64;
        if v2 {
            write("cpu.max", format!("{quota} {PERIOD_US}"));
        } else {
            write("cpu.cfs_period_us", PERIOD_US.to_string());
            write("cpu.cfs_quota_us", quota.to_string());
        }
        write("cgroup.procs", pid.to_string());
        CpuLimit {
            dir,
            parent_procs: root.join("cgroup.procs"),
        }
    }
}

impl Drop for CpuLimit {
    fn drop(&mut self) {
        // A cgroup with processes in it cannot be removed: move them out.
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                let _ = std::fs::write(&self.parent_procs, pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}
