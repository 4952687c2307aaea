"""The system report: one self-contained HTML page about the loop's health (``salesloop report``).

See :mod:`salesloop.report.build`.
"""

from salesloop.report.build import ReportData, build_report, collect, render_report, write_report

__all__ = ["ReportData", "build_report", "collect", "render_report", "write_report"]
