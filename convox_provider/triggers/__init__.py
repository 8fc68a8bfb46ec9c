"""Airflow triggers: the deferred waits of Convox operators and sensors, run by the triggerer."""
