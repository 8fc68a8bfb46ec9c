"""Airflow operators: create, build, deploy, promote, roll back, restart and delete Convox apps."""
