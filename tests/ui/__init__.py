"""Real-browser tests: Airflow's own UI, run as ``airflow api-server``, driven by Chromium."""
