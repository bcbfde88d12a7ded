"""A sync process for crash and concurrency tests: `python sync_child.py push|pull WAREHOUSE URL [ENDPOINT]`."""

import sys

from cmfq.warehouse.layout import Layout
from cmfq.warehouse.remote import open_remote
from cmfq.warehouse.sync import pull, push

action, warehouse, url = sys.argv[1:4]
options = {"endpoint_url": sys.argv[4]} if len(sys.argv) > 4 else {}
remote = open_remote(url, options)
report = (push if action == "push" else pull)(Layout(__import__("pathlib").Path(warehouse)), remote, workers=4)
print(f"done {report.files} {len(report.failed)}", flush=True)
