"""A stand-in for Apache Airflow, just large enough to load
deploy/airflow/verity_nightly.py and run it the way the scheduler would
(deploy/airflow/test_dag.py). It records every DAG, each task's arguments
and its upstream tasks; it is not Airflow and implements none of its
scheduling, templating or retry timing.

Provided: airflow.sdk.DAG, airflow.sdk.BaseOperator (Airflow 3 import
paths) and airflow.exceptions.AirflowException / AirflowFailException.
"""

DAGS = []  # every DAG defined, in order
