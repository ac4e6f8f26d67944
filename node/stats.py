"""Host statistics for a worker's /stats. The only module that imports psutil."""
from __future__ import annotations

import os
import socket
from typing import Any

import psutil


def collect(disk_path: str = "/") -> dict[str, Any]:
    """Return the host's figures in the shape of the contract's /stats (without task_count).

    cpu_percent is measured since the previous call (psutil's interval=None), so the first
    call of a process reports 0.0; call it periodically.
    """
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(disk_path)
    return {
        "hostname": socket.gethostname(),
        "cpu_count": psutil.cpu_count() or 1,
        "cpu_percent": psutil.cpu_percent(interval=None),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "memory": {"total": memory.total, "available": memory.available,
                   "used": memory.used, "percent": memory.percent},
        "disk": {"total": disk.total, "used": disk.used, "free": disk.free, "percent": disk.percent},
    }
