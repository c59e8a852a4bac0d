"""gunicorn.conf.py's settings (bind from HOST/PORT, workers, gthread threads,
timeouts, access log...) for a baseline app, without its Dormouse hooks (the
scheduler start in post_worker_init needs Dormouse's app). Read from the
production file each time, so the baseline follows any change to it."""

import runpy
from pathlib import Path

_production = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
globals().update(
    {
        name: value
        for name, value in _production.items()
        if not name.startswith("_") and isinstance(value, bool | int | float | str)
    }
)
