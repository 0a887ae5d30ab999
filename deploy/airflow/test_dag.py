"""Checks the Airflow example (verity_nightly.py) without Airflow: loads it
against the stand-in airflow package in testing/, which records each task's
command and dependencies, runs those commands on the committed fixtures with
the real binary (VERITY_BIN), and checks their exit codes, the outputs, and
what the DAG makes Airflow do with each exit code.

    VERITY_BIN=bin/verity python3 deploy/airflow/test_dag.py    (make deploy-check)
"""

import datetime as dt
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(HERE, "testing"), HERE]

import airflow  # noqa: E402  (the stand-in)
from airflow.exceptions import AirflowException, AirflowFailException  # noqa: E402
from airflow.sdk import run_dag, topological  # noqa: E402

# The spec folders the DAG runs, by task-group name. (Once fixture specs
# have distinct names and `verity run fixtures/specs/` passes, "nightly"
# becomes every spec of fixtures/specs.)
FOLDERS = {
    "nightly": ["checkout-button.yaml", "onboarding-flow.yaml"],
    "pricing": ["pricing-page-srm.yaml"],  # blocked: sample-ratio mismatch
}
OUTPUTS = ["results.csv", "results.parquet", "results.schema.json", "decisions.json", "quality.json", "report.html", "manifest.json"]
# A run at 03:30 UTC on 2026-11-20 analyses the night of 2026-11-19.
CONTEXT = {"data_interval_end": dt.datetime(2026, 11, 20, 3, 30, tzinfo=dt.timezone.utc), "params": {"night": ""}}
NIGHT = "2026-11-19"


class quiet:
    """Sends this process's stdout and stderr (and so verity's, which the
    tasks inherit, as Airflow's task log would get them) to a file."""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = os.dup(1), os.dup(2)
        self.log = tempfile.TemporaryFile()
        os.dup2(self.log.fileno(), 1)
        os.dup2(self.log.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])
        self.log.close()
        return False


def verity_bin():
    b = os.environ.get("VERITY_BIN")
    if not b:
        raise SystemExit("test_dag.py: set VERITY_BIN to a built verity (make deploy-check does)")
    return os.path.abspath(b)


def load_dag(root, with_data=True):
    """Lays out the fixtures under root and loads the DAG configured for them."""
    for name, specs in FOLDERS.items():
        os.makedirs(os.path.join(root, name))
        for s in specs:
            shutil.copy(os.path.join(REPO, "fixtures", "specs", s), os.path.join(root, name, s))
    if with_data:  # beside the spec folders, so the specs' ../data inputs resolve
        shutil.copytree(os.path.join(REPO, "fixtures", "data"), os.path.join(root, "data"))
    os.environ["VERITY_BIN"] = verity_bin()
    os.environ["VERITY_OUT"] = os.path.join(root, "results")
    os.environ["VERITY_SPEC_FOLDERS"] = ",".join(f"{n}={os.path.join(root, n)}" for n in FOLDERS)
    airflow.DAGS.clear()
    if "verity_nightly" in sys.modules:
        module = importlib.reload(sys.modules["verity_nightly"])
    else:
        module = importlib.import_module("verity_nightly")
    if len(airflow.DAGS) != 1:
        raise AssertionError(f"want one DAG, got {len(airflow.DAGS)}")
    return module, airflow.DAGS[0]


class DagTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="verity-airflow-")
        self.addCleanup(shutil.rmtree, self.root)

    def test_structure(self):
        _, dag = load_dag(self.root)
        self.assertEqual(dag.dag_id, "verity_nightly")
        self.assertFalse(dag.catchup)
        self.assertEqual(dag.max_active_runs, 1)
        want = {f"{k}_{n}" for n in FOLDERS for k in ("validate", "run")}
        self.assertEqual(set(dag.tasks), want)
        for n in FOLDERS:
            run, validate = dag.tasks[f"run_{n}"], dag.tasks[f"validate_{n}"]
            self.assertEqual(run.upstream_task_ids, {f"validate_{n}"})
            self.assertEqual(validate.upstream_task_ids, set())
            self.assertGreater(run.retries, 0, "transient failures and late data need retries")
            folder = os.path.join(self.root, n)
            self.assertEqual(run.command(CONTEXT)[-1], folder)
            self.assertIn("--date", run.command(CONTEXT))
            self.assertEqual(run.command(CONTEXT)[run.command(CONTEXT).index("--date") + 1], NIGHT)
            self.assertEqual(run.command(CONTEXT)[run.command(CONTEXT).index("--out") + 1], os.path.join(self.root, "results"))

    def test_recorded_commands_on_fixtures(self):
        """The commands the DAG recorded, run in dependency order on the fixtures."""
        _, dag = load_dag(self.root)
        want = {"validate_nightly": 0, "run_nightly": 0, "validate_pricing": 0, "run_pricing": 65}
        for op in topological(dag):
            argv = op.command(CONTEXT)
            p = subprocess.run(argv, capture_output=True, text=True)
            self.assertEqual(p.returncode, want[op.task_id], f"{op.task_id}: {' '.join(argv)}\n{p.stdout}{p.stderr}")
        for n, specs in FOLDERS.items():
            for s in specs:
                exp = s[: -len(".yaml")]  # fixture specs are named after their file
                for f in OUTPUTS:
                    path = os.path.join(self.root, "results", exp, NIGHT, f)
                    self.assertTrue(os.path.isfile(path), f"missing output {path}")

    def test_scheduler_acts_on_exit_codes(self):
        """Run as the scheduler would: the blocked folder fails for good,
        the good one succeeds."""
        _, dag = load_dag(self.root)
        with quiet():
            states = run_dag(dag, CONTEXT)
        self.assertEqual(states["validate_nightly"][0], "success")
        self.assertEqual(states["run_nightly"][0], "success")
        self.assertEqual(states["validate_pricing"][0], "success")
        state, exc = states["run_pricing"]
        self.assertEqual(state, "failed")
        self.assertIsInstance(exc, AirflowFailException)
        self.assertTrue(str(exc).startswith("verity exit 65: blocked"), str(exc))

    def test_data_not_landed_is_retried(self):
        _, dag = load_dag(self.root, with_data=False)
        with quiet():
            states = run_dag(dag, CONTEXT)
        for n in FOLDERS:
            state, exc = states[f"validate_{n}"]
            self.assertEqual(state, "up_for_retry", f"validate_{n}: {exc}")
            self.assertNotIsInstance(exc, AirflowFailException)
            self.assertTrue(str(exc).startswith("verity exit 66:"), str(exc))
            self.assertEqual(states[f"run_{n}"][0], "upstream_failed")
        self.assertFalse(os.path.exists(os.path.join(self.root, "results")), "nothing may be written")

    def test_exit_code_policy(self):
        module, _ = load_dag(self.root)
        module.act_on_exit_code(0, ["verity"])
        for code in (65, 70, 73, 78):
            with self.assertRaises(AirflowFailException, msg=f"exit {code} must not be retried"):
                module.act_on_exit_code(code, ["verity"])
        for code in (1, 66, 75, 137):
            with self.assertRaises(AirflowException) as cm:
                module.act_on_exit_code(code, ["verity"])
            self.assertNotIsInstance(cm.exception, AirflowFailException, f"exit {code} must be retried")

    def test_night(self):
        module, _ = load_dag(self.root)
        self.assertEqual(module.night_of(CONTEXT), NIGHT)
        late = {"data_interval_end": dt.datetime(2026, 11, 20, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))}
        self.assertEqual(module.night_of(late), "2026-11-18", "the night is taken in UTC")
        self.assertEqual(module.night_of(dict(CONTEXT, params={"night": "2026-11-17"})), "2026-11-17")


if __name__ == "__main__":
    unittest.main(verbosity=2)
