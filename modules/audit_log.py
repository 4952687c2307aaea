"""BigQuery DATA_WRITE audit logs: the event source of the on_sale trigger.

An insert job into the sales table is visible to Eventarc only as a Data Access audit log entry
(``google.cloud.bigquery.v2.JobService.InsertJob`` with a tableDataChange on the table), so the
project's audit config must keep DATA_WRITE on for BigQuery.
"""

from __future__ import annotations

from cdktn_provider_google.project_iam_audit_config import (
    ProjectIamAuditConfig,
    ProjectIamAuditConfigAuditLogConfig,
)
from constructs import Construct

from modules.context import StackContext, named


class AuditLogConfig(Construct):
    def __init__(self, scope: Construct, id_: str, *, ctx: StackContext) -> None:
        super().__init__(scope, id_)
        self.config = named(
            ProjectIamAuditConfig(
                self,
                "bigquery",
                project=ctx.project,
                service="bigquery.googleapis.com",
                audit_log_config=[ProjectIamAuditConfigAuditLogConfig(log_type="DATA_WRITE")],
            ),
            "audit_bigquery_data_write",
        )
