"""Airflow operators: build, deploy, promote and roll back Convox apps."""
