"""A logging process for crash and concurrency tests (run as a script, killed at will).

    python logger_child.py WAREHOUSE TAG COUNT [REMOTE_URL [ENDPOINT]]

Logs COUNT executions (-1: until killed), each with an input, an output, step and final
metrics and an annotation, and prints ``ack <i> <execution id>`` once all of them returned:
from that moment its facts must survive anything, including ``kill -9``.

With a remote it also works the way a busy site does, one step after each execution, in
turn: push and pull, compact the warehouse, query it (refreshing the index), compact the
remote. The torture test kills it anywhere in there.
"""

import hashlib
import sys
from pathlib import Path

import cmfq
from cmfq.warehouse.compact import compact
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.remote import open_remote
from cmfq.warehouse.sync import pull, push

warehouse, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
remote = open_remote(sys.argv[4], {"endpoint_url": sys.argv[5]} if len(sys.argv) > 5 else {}) \
    if len(sys.argv) > 4 else None
t = cmfq.Tracker("crash-" + tag, warehouse=warehouse, capture_git=False, capture_env=False)
layout = Layout(Path(warehouse))


def busy_site_step(i: int) -> None:
    assert remote is not None
    step = i % 4
    if step == 0:
        t.flush()
        push(layout, remote, workers=4)
        pull(layout, remote, workers=4)
    elif step == 1:
        compact(layout)
    elif step == 2:
        with cmfq.Warehouse(warehouse) as wh:
            wh.sql("SELECT count(*) FROM executions").item()
    else:
        compact(remote)


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
    if remote is not None:
        busy_site_step(i)
    i += 1
t.close()
