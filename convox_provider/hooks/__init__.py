"""Airflow hooks: an Airflow ``convox`` connection turned into a Convox client."""
