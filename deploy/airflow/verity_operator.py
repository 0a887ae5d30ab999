"""What Verity's Airflow DAGs share (verity_nightly.py, verity_sharded.py):
VerityOperator runs verity and maps its exit code onto Airflow's retry or
fail; night_of says which night a run analyses. Exit codes: docs/PRODUCT.md
and deploy/README.md.
"""

import datetime as dt
import logging
import subprocess

from airflow.exceptions import AirflowException, AirflowFailException
from airflow.sdk import BaseOperator

RETRIES = 6
RETRY_DELAY = dt.timedelta(minutes=20)  # 66 (not landed) is retried for two hours

log = logging.getLogger(__name__)

# What each exit code means and whether a retry can help.
RETRYABLE = {
    1: "transient failure (interrupted, or an input rewritten while it was read)",
    75: "temporary failure",
    66: "an input is missing: the night's data has not landed yet",
}
FINAL = {
    65: "blocked by a data-quality gate or a sample-ratio mismatch (outputs written, verdict invalid): alert the experiment owners",
    70: "replay or golden mismatch",
    73: "cannot create the output",
    78: "configuration or integrity error (spec, key, ledger, budget, --out)",
}


def act_on_exit_code(code, argv):
    """Returns on 0; raises what makes Airflow retry or fail for good."""
    if code == 0:
        return
    cmd = " ".join(argv)
    if code in FINAL:
        raise AirflowFailException(f"verity exit {code}: {FINAL[code]}: {cmd}")
    why = RETRYABLE.get(code, "unexpected exit (killed or crashed)")
    raise AirflowException(f"verity exit {code}: {why}; retrying: {cmd}")


def night_of(context):
    """The nominal date to analyse: the param "night", else the day before
    the end of the run's data interval (UTC)."""
    night = (context.get("params") or {}).get("night")
    if night:
        return str(night)
    end = context["data_interval_end"].astimezone(dt.timezone.utc)
    return (end.date() - dt.timedelta(days=1)).isoformat()


class VerityOperator(BaseOperator):
    """Runs verity with argv, where "{night}" stands for the nominal date,
    and maps its exit code onto Airflow's retry or fail."""

    def __init__(self, *, argv, **kwargs):
        super().__init__(**kwargs)
        self.argv = list(argv)

    def command(self, context):
        night = night_of(context)
        return [a.replace("{night}", night) for a in self.argv]

    def execute(self, context):
        argv = self.command(context)
        log.info("running %s", " ".join(argv))
        code = subprocess.run(argv, check=False).returncode
        act_on_exit_code(code, argv)
