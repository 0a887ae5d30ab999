"""Checks the Airflow examples (verity_nightly.py, verity_sharded.py) without Airflow: loads each
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
from airflow.sdk import MappedOperator, run_dag, topological  # noqa: E402

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


BIN = os.environ.get("VERITY_BIN")  # read once: load_* set VERITY_BIN for the DAG files


def verity_bin():
    b = BIN
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
    return load_module("verity_nightly")


def load_module(name):
    """(Re)imports the DAG file name under the environment set now."""
    airflow.DAGS.clear()
    if name in sys.modules:
        module = importlib.reload(sys.modules[name])
    else:
        module = importlib.import_module(name)
    if len(airflow.DAGS) != 1:
        raise AssertionError(f"{name}: want one DAG, got {len(airflow.DAGS)}")
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


# The sharded DAG runs the specs deploy/slurm/test.sh runs: a private spec
# and an exact one, on the committed fixtures, K = 3.
SHARDED_SPECS = [os.path.join(REPO, "fixtures", "specs", "checkout-button-private.yaml"),
                 os.path.join(REPO, "golden", "testdata", "shard-exact.yaml")]
SHARDED_EXPERIMENTS = ["checkout-button-private", "checkout-button-sharded"]
K = 3


def init_ledger(state):
    subprocess.run([verity_bin(), "ledger", "init", "--state-dir", state, "--source", "fixtures",
                    "--root", os.path.join(REPO, "fixtures", "data"), "--epsilon", "40", "--delta", "1e-6"],
                   check=True, capture_output=True)


def load_sharded(root, verity=None):
    """Loads verity_sharded.py configured for root (its own ledger, partials and results)."""
    init_ledger(os.path.join(root, "state"))
    os.environ["VERITY_BIN"] = verity or verity_bin()
    os.environ["VERITY_OUT"] = os.path.join(root, "results")
    os.environ["VERITY_PARTIALS"] = os.path.join(root, "partials")
    os.environ["VERITY_SHARDS"] = str(K)
    os.environ["VERITY_SPECS"] = " ".join(SHARDED_SPECS)
    os.environ["VERITY_FLAGS"] = f"--allow-test-key --state-dir {os.path.join(root, 'state')}"
    return load_module("verity_sharded")


def same_release(test, a, b):
    """Every file of two releases of a night is the same, byte for byte; the
    manifests may differ only in their volatile block (timings, host)."""
    import json
    test.assertEqual(sorted(os.listdir(a)), sorted(os.listdir(b)))
    for name in sorted(os.listdir(a)):
        with open(os.path.join(a, name), "rb") as fa, open(os.path.join(b, name), "rb") as fb:
            da, db = fa.read(), fb.read()
        if name == "manifest.json":
            ma, mb = json.loads(da), json.loads(db)
            ma.pop("volatile", None)
            mb.pop("volatile", None)
            test.assertEqual(ma, mb, f"{a} vs {b}: manifest.json")
        else:
            test.assertEqual(da, db, f"{a} vs {b}: {name} differs")


class ShardedDagTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="verity-airflow-sharded-")
        self.addCleanup(shutil.rmtree, self.root)

    def test_structure(self):
        _, dag = load_sharded(self.root)
        self.assertEqual(dag.dag_id, "verity_sharded_nightly")
        self.assertEqual(set(dag.tasks), {"shard", "merge"})
        shard, merge = dag.tasks["shard"], dag.tasks["merge"]
        self.assertIsInstance(shard, MappedOperator, "shards are one mapped task")
        self.assertEqual(merge.upstream_task_ids, {"shard"})
        self.assertGreater(shard.retries, 0)
        self.assertEqual(len(shard.instances), K)
        for i, inst in enumerate(shard.instances):
            argv = inst.command(CONTEXT)
            self.assertEqual(argv[argv.index("--shard") + 1], f"{i}/{K}")
            self.assertEqual(argv[argv.index("--date") + 1], NIGHT)
            self.assertEqual(argv[-len(SHARDED_SPECS):], SHARDED_SPECS)
        argv = merge.command(CONTEXT)
        self.assertEqual(argv[1], "merge")
        self.assertEqual(argv[argv.index("--shards") + 1], str(K))
        self.assertEqual(argv[argv.index("--partials") + 1], os.path.join(self.root, "partials"))

    def test_merged_release_is_the_single_node_run(self):
        _, dag = load_sharded(self.root)
        with quiet():
            states = run_dag(dag, CONTEXT)
        self.assertEqual({t: st for t, (st, _) in states.items()},
                         {"shard": "success", "merge": "success", **{f"shard[{i}]": "success" for i in range(K)}}, str(states))
        single = os.path.join(self.root, "single")
        init_ledger(os.path.join(single, "state"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("VERITY_")}
        p = subprocess.run([verity_bin(), "run", "--log", "none", "--allow-test-key", "--state-dir",
                            os.path.join(single, "state"), "--date", NIGHT, "--out", os.path.join(single, "out"),
                            *SHARDED_SPECS], capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for exp in SHARDED_EXPERIMENTS:
            same_release(self, os.path.join(single, "out", exp, NIGHT), os.path.join(self.root, "results", exp, NIGHT))

    def test_a_failed_shard_releases_nothing(self):
        """Shard 1's data has not landed (exit 66): it is retried, the merge does
        not run, and no result exists for the night."""
        fake = os.path.join(self.root, "verity-shard1-missing")
        with open(fake, "w") as f:
            f.write(f'#!/bin/sh\ncase "$*" in *"--shard 1/{K} "*) exit 66;; esac\nexec {verity_bin()} "$@"\n')
        os.chmod(fake, 0o755)
        _, dag = load_sharded(self.root, verity=fake)
        with quiet():
            states = run_dag(dag, CONTEXT)
        self.assertEqual(states["shard[0]"][0], "success")
        state, exc = states["shard[1]"]
        self.assertEqual(state, "up_for_retry")
        self.assertTrue(str(exc).startswith("verity exit 66:"), str(exc))
        self.assertEqual(states["merge"][0], "upstream_failed")
        self.assertFalse(os.path.exists(os.path.join(self.root, "results")), "nothing may be released")

    def test_merge_refuses_a_missing_partial(self):
        """If a partial vanishes between the shards and the merge (shared storage
        lost a file), the merge exits 66 naming it, and releases nothing."""
        _, dag = load_sharded(self.root)
        for inst in dag.tasks["shard"].instances:
            p = subprocess.run(inst.command(CONTEXT), capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        removed = 0
        for dirpath, _, files in os.walk(os.path.join(self.root, "partials")):
            for name in files:
                if name == f"shard-2-of-{K}.json":
                    os.remove(os.path.join(dirpath, name))
                    removed += 1
        self.assertGreater(removed, 0, f"no partial of shard 2 found under {self.root}/partials")
        p = subprocess.run(dag.tasks["merge"].command(CONTEXT), capture_output=True, text=True)
        self.assertEqual(p.returncode, 66, p.stdout + p.stderr)
        self.assertIn("shard 2/3", p.stdout + p.stderr)
        for exp in SHARDED_EXPERIMENTS:  # (the experiment's folder holds only its lock)
            night = os.path.join(self.root, "results", exp, NIGHT)
            self.assertFalse(os.path.exists(night), f"nothing may be released: {night}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
