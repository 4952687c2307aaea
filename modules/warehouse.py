"""The BigQuery dataset and every table of :data:`salesloop.schemas.TABLES`.

Schemas, partitioning and clustering are derived from the library's schema module, never written
here, so a column added to the library reaches each environment's Terraform in the same change
(tests/infra checks that the synthesized tables match TABLES exactly).
"""

from __future__ import annotations

import json

from cdktn_provider_google.bigquery_dataset import BigqueryDataset
from cdktn_provider_google.bigquery_table import BigqueryTable
from constructs import Construct

from modules.context import StackContext, named
from salesloop.schemas import TABLES, Table, bigquery_schema_json, bigquery_time_partitioning


def table_logical_id(logical: str) -> str:
    return f"warehouse_{logical}"


def terraform_schema(table: Table) -> str:
    """The table's BigQuery JSON schema as Terraform wants it.

    Empty descriptions are left out: BigQuery does not store them, so reading the table back would
    differ from the configuration and every plan would show a change.
    """
    fields = [
        {k: v for k, v in field.items() if not (k == "description" and v == "")}
        for field in bigquery_schema_json(table)
    ]
    return json.dumps(fields, separators=(",", ":"))


class Warehouse(Construct):
    def __init__(self, scope: Construct, id_: str, *, ctx: StackContext) -> None:
        super().__init__(scope, id_)
        wh = ctx.settings.warehouse
        self.dataset_id = wh.dataset
        key = ctx.multi_region_key
        self.dataset = named(
            BigqueryDataset(
                self,
                "dataset",
                dataset_id=wh.dataset,
                location=wh.location,
                description="salesloop warehouse: sales, forecasts, alerts, model versions, metrics",
                labels=ctx.labels("warehouse"),
                delete_contents_on_destroy=False,
                default_encryption_configuration={"kms_key_name": key} if key else None,
                deletion_policy="PREVENT" if ctx.deletion_protection else None,
            ),
            "warehouse_dataset",
        )
        ctx.accept_no_cmek(self.dataset, "CKV_GCP_81")
        self.tables: dict[str, BigqueryTable] = {}
        for logical, table in TABLES.items():
            self.tables[logical] = self._table(ctx, logical, table, key)

    def _table(
        self, ctx: StackContext, logical: str, table: Table, key: str | None
    ) -> BigqueryTable:
        partitioning = bigquery_time_partitioning(table)
        resource = BigqueryTable(
            self,
            logical,
            dataset_id=self.dataset.dataset_id,
            table_id=ctx.settings.table(logical),
            description=table.description,
            schema=terraform_schema(table),
            time_partitioning=partitioning,
            clustering=list(table.cluster_by) or None,
            deletion_protection=ctx.deletion_protection,
            encryption_configuration={"kms_key_name": key} if key else None,
            labels=ctx.labels("warehouse"),
        )
        ctx.accept_no_cmek(resource, "CKV_GCP_80")
        ctx.accept_unprotected(resource, "CKV_GCP_121")
        return named(resource, table_logical_id(logical))

    def table_resource_name(self, ctx: StackContext, logical: str) -> str:
        """The audit-log resource name of a table (what the Eventarc trigger filters on)."""
        return f"projects/{ctx.project}/datasets/{self.dataset_id}/tables/{ctx.settings.table(logical)}"
