"""A logging process for crash and concurrency tests (run as a script, killed at will).

Prints ``ack <i> <execution id>`` after each execution has returned from its ``with``
block: from that moment its facts must survive anything, including ``kill -9``.
"""

import hashlib
import sys

import cmfq

warehouse, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = cmfq.Tracker("crash-" + tag, warehouse=warehouse, capture_git=False, capture_env=False)
i = 0
while count < 0 or i < count:
    with t.execution("step", params={"i": i, "tag": tag}) as ex:
        ex.log_input(hash=hashlib.md5(f"{tag}-in-{i}".encode()).hexdigest(), name=f"in-{i}")
        for step in range(3):
            ex.log_metric("loss", 1.0 / (step + 1), step=step)
        ex.log_metrics({"score": float(i)})
        ex.log_output(hash=hashlib.md5(f"{tag}-out-{i}".encode()).hexdigest(), name=f"out-{i}")
    t.annotate("execution", ex.id, "note", f"run {i}")
    print(f"ack {i} {ex.id}", flush=True)
    i += 1
t.close()
