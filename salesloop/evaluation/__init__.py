"""Forecast evaluation: metrics, rolling-origin backtests, statistical baselines, HTML reports."""
