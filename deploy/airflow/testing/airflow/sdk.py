"""Stand-ins for airflow.sdk.DAG and airflow.sdk.BaseOperator.

DAG is a context manager; an operator created inside it joins it. `a >> b`
makes a upstream of b, as in Airflow. run_dag executes a DAG's tasks in
dependency order, as the scheduler's default trigger rule (all_success)
would: a task runs only when all its upstream tasks succeeded, else it is
"upstream_failed". Each outcome is recorded; retries are recorded as
"up_for_retry" (AirflowException with retries left) or "failed".
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


def run_dag(dag, context):
    """Runs every task once, in dependency order; returns {task_id: (state, exception)}."""
    states = {}
    for op in topological(dag):
        if any(states[u][0] != "success" for u in op.upstream_task_ids):
            states[op.task_id] = ("upstream_failed", None)
            continue
        try:
            op.execute(dict(context, task=op, dag=dag))
            states[op.task_id] = ("success", None)
        except AirflowFailException as e:
            states[op.task_id] = ("failed", e)
        except AirflowException as e:
            states[op.task_id] = ("up_for_retry" if op.retries > 0 else "failed", e)
    return states
