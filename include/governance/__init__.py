"""governance: the library behind the DAGs, the CLI, the tests and the benchmarks.

Plain Python that takes a database connection, an S3 client and "now"; it never imports Airflow,
so the same code runs everywhere. Modules:

- policy:    the policy-as-code model (pydantic) and its loader/validator
- windows:   ISO 8601 windows and calendar arithmetic in UTC (RET-10)
- settings:  where the database and the object store are, and clear errors when they are not
- db:        connections and the idempotent schema
"""

__version__ = "0.1.0"
