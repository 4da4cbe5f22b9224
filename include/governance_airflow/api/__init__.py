"""The shop's support tool's HTTP API over the request ledger (REQ-1): a FastAPI app that Airflow's
own API server serves as a plugin (``plugins/governance_plugin.py``), behind Airflow's
authentication and authorisation (``access``). Imported only where the API server builds it.
"""
