"""An OTLP/gRPC trace receiver, as a collector is one: serves
opentelemetry.proto.collector.trace.v1.TraceService on 127.0.0.1 and
prints every span it receives as one JSON line on stdout.

The first line is `listening <port>`; it runs until its stdin closes.
With --count it prints nothing per span, runs until SIGTERM, and then
prints how many spans it received (for benchmarks, where printing would
cost more than receiving).
"""
import json
import signal
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, count_only):
        self.count_only = count_only
        self.received = 0
        self.lock = threading.Lock()

    def Export(self, request, context):
        if self.count_only:
            n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            with self.lock:
                self.received += n
            return trace_service_pb2.ExportTraceServiceResponse()
        for rs in request.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    line = {
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "start_ns": s.start_time_unix_nano,
                        "end_ns": s.end_time_unix_nano,
                        "attributes": attributes(s.attributes),
                        "events": [e.name for e in s.events],
                        "status_code": s.status.code,
                        "scope": ss.scope.name,
                        "resource": resource,
                    }
                    print(json.dumps(line), flush=True)
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    receiver = Receiver(count_only="--count" in sys.argv[1:])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening {port}", flush=True)
    if receiver.count_only:
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        done.wait()
    else:
        # The test ends it by closing stdin (or by ending it).
        sys.stdin.read()
    server.stop(grace=None)
    if receiver.count_only:
        print(f"received {receiver.received} spans", flush=True)


if __name__ == "__main__":
    main()
