"""Airflow sensors: wait for a Convox build or rollout started elsewhere."""
