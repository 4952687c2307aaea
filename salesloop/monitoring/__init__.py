"""Monitoring of the deployed forecaster: drift of its inputs and outputs, accuracy of its past
forecasts against the actuals that arrived since, thresholds per environment and the retraining
trigger. Everything it measures lands in the ``monitoring_metrics`` table."""
