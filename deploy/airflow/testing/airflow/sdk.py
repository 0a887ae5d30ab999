"""Stand-ins for airflow.sdk.DAG and airflow.sdk.BaseOperator.

DAG is a context manager; an operator created inside it joins it. `a >> b`
makes a upstream of b, as in Airflow. run_dag executes a DAG's tasks in
dependency order, as the scheduler's default trigger rule (all_success)
would: a task runs only when all its upstream tasks succeeded, else it is
"upstream_failed". Each outcome is recorded; retries are recorded as
"up_for_retry" (AirflowException with retries left) or "failed".

Dynamic task mapping: Operator.partial(task_id=..., **fixed).expand(**lists)
adds one mapped task whose instances (map_index 0..n-1) each get the fixed
arguments plus element i of every list (Airflow's "cross product" of
several lists is not needed and refused). run_dag runs every instance and
records "task[i]" besides "task", which is "success" only when all are.
"""

import airflow
from airflow.exceptions import AirflowException, AirflowFailException

_current = []


class DAG:
    def __init__(self, dag_id, *, schedule=None, start_date=None, catchup=None,
                 default_args=None, max_active_runs=None, tags=None, doc_md=None,
                 params=None, **unknown):
        if unknown:
            raise TypeError(f"DAG: arguments the stand-in does not know: {sorted(unknown)}")
        self.dag_id = dag_id
        self.schedule = schedule
        self.start_date = start_date
        self.catchup = catchup
        self.default_args = dict(default_args or {})
        self.max_active_runs = max_active_runs
        self.tags = list(tags or [])
        self.params = dict(params or {})
        self.tasks = {}
        airflow.DAGS.append(self)

    def __enter__(self):
        _current.append(self)
        return self

    def __exit__(self, *exc):
        _current.pop()
        return False


class BaseOperator:
    def __init__(self, *, task_id, retries=None, retry_delay=None, dag=None, **unknown):
        if unknown:
            raise TypeError(f"{type(self).__name__}: arguments the stand-in does not know: {sorted(unknown)}")
        self.dag = dag or (_current[-1] if _current else None)
        if self.dag is None:
            raise RuntimeError(f"task {task_id} is outside a DAG")
        if task_id in self.dag.tasks:
            raise ValueError(f"duplicate task_id {task_id}")
        self.task_id = task_id
        self.retries = retries if retries is not None else self.dag.default_args.get("retries", 0)
        self.retry_delay = retry_delay if retry_delay is not None else self.dag.default_args.get("retry_delay")
        self.upstream_task_ids = set()
        self.downstream_task_ids = set()
        self.dag.tasks[task_id] = self

    def set_downstream(self, other):
        for o in other if isinstance(other, (list, tuple)) else [other]:
            self.downstream_task_ids.add(o.task_id)
            o.upstream_task_ids.add(self.task_id)

    def __rshift__(self, other):
        self.set_downstream(other)
        return other

    def __lshift__(self, other):
        for o in other if isinstance(other, (list, tuple)) else [other]:
            o.set_downstream(self)
        return other

    def execute(self, context):
        raise NotImplementedError

    @classmethod
    def partial(cls, *, task_id, **fixed):
        return _Partial(cls, task_id, fixed)


class _Detached:
    """The DAG stand-in a mapped instance is built against: it carries the
    real DAG's default_args but does not register the instance."""

    def __init__(self, dag):
        self.default_args = dag.default_args
        self.tasks = {}


class _Partial:
    def __init__(self, cls, task_id, fixed):
        if "dag" in fixed:
            raise TypeError("partial: dag is taken from the enclosing DAG")
        self.cls, self.task_id, self.fixed = cls, task_id, fixed

    def expand(self, **lists):
        if not lists:
            raise TypeError(f"{self.task_id}: expand needs at least one mapped argument")
        if len(lists) > 1:
            raise TypeError(f"{self.task_id}: the stand-in maps over one argument only, got {sorted(lists)}")
        for k, v in lists.items():
            if k in self.fixed or k == "task_id":
                raise TypeError(f"{self.task_id}: {k} is both fixed and mapped")
            if not isinstance(v, (list, tuple)):
                raise TypeError(f"{self.task_id}: expand({k}=...) needs a list, got {type(v).__name__}")
        return MappedOperator(self, lists)


class MappedOperator(BaseOperator):
    """A task expanded at run time into one instance per list element."""

    def __init__(self, partial, lists):
        super().__init__(task_id=partial.task_id, **{k: v for k, v in partial.fixed.items() if k in ("retries", "retry_delay")})
        (name, values), = lists.items()
        # Built now, as Airflow validates mapped arguments when the DAG is parsed.
        self.instances = [partial.cls(task_id=self.task_id, dag=_Detached(self.dag), **partial.fixed, **{name: v})
                          for v in values]


def topological(dag):
    order, done = [], set()
    pending = dict(dag.tasks)
    while pending:
        ready = sorted(t for t, op in pending.items() if op.upstream_task_ids <= done)
        if not ready:
            raise ValueError(f"{dag.dag_id}: a dependency cycle among {sorted(pending)}")
        for t in ready:
            order.append(pending.pop(t))
            done.add(t)
    return order


def run_task(op, context):
    """Runs one task instance once; returns (state, exception)."""
    try:
        op.execute(context)
        return "success", None
    except AirflowFailException as e:
        return "failed", e
    except AirflowException as e:
        return ("up_for_retry" if op.retries > 0 else "failed"), e


def run_dag(dag, context):
    """Runs every task once, in dependency order; returns {task_id: (state, exception)}
    (and {"task[i]": ...} for each instance of a mapped task)."""
    states = {}
    for op in topological(dag):
        if any(states[u][0] != "success" for u in op.upstream_task_ids):
            states[op.task_id] = ("upstream_failed", None)
            continue
        if not isinstance(op, MappedOperator):
            states[op.task_id] = run_task(op, dict(context, task=op, dag=dag))
            continue
        outcome = ("success", None)
        for i, inst in enumerate(op.instances):
            states[f"{op.task_id}[{i}]"] = run_task(inst, dict(context, task=inst, dag=dag, map_index=i))
            if outcome[0] == "success" and states[f"{op.task_id}[{i}]"][0] != "success":
                outcome = states[f"{op.task_id}[{i}]"]
        states[op.task_id] = outcome
    return states
