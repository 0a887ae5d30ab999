"""The two Airflow exceptions the DAG raises, with Airflow's meaning."""


class AirflowException(Exception):
    """A task failure; Airflow retries it while the task has retries left."""


class AirflowFailException(AirflowException):
    """A task failure that Airflow does not retry."""
