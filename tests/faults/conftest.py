"""The cluster fault run (test_cluster.py) starts three RabbitMQ nodes and runs for minutes: it is
part of ``make faults`` (TRISAM_FAULTS=full) only, and not collected by ``make test``. It is never
skipped: where it runs, a cluster that cannot be started fails it."""

import os

collect_ignore = [] if os.environ.get("TRISAM_FAULTS") == "full" else ["test_cluster.py"]
