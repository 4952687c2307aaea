"""The Vertex AI endpoint that serves forecasts, with request/response logging to BigQuery.

Models are deployed onto it by the pipeline's rollout step (canary, promote, roll back), not by
Terraform: Terraform owns the endpoint, its logging and encryption, and leaves the traffic split
alone. Vertex AI model monitoring has no Terraform resource in provider 8.7; the deploy step
configures it through the SDK (docs/infra.md).
"""

from __future__ import annotations

from cdktn_provider_google.bigquery_dataset import BigqueryDataset
from cdktn_provider_google.vertex_ai_endpoint import VertexAiEndpoint
from constructs import Construct

from modules.context import StackContext, checkov_skip, named


class ModelEndpoint(Construct):
    def __init__(self, scope: Construct, id_: str, *, ctx: StackContext) -> None:
        super().__init__(scope, id_)
        key = ctx.regional_key
        self.logs_dataset_id = f"{ctx.settings.warehouse.dataset}_serving_logs"
        # Regional, beside the endpoint: Vertex writes the log rows from the endpoint's region.
        self.logs_dataset = named(
            BigqueryDataset(
                self,
                "logs",
                dataset_id=self.logs_dataset_id,
                location=ctx.region,
                description="Online prediction requests and responses of the forecast endpoint",
                default_encryption_configuration={"kms_key_name": key} if key else None,
                delete_contents_on_destroy=False,
                deletion_policy="PREVENT" if ctx.deletion_protection else None,
                labels=ctx.labels("serving"),
                depends_on=ctx.kms_grants or None,
            ),
            "endpoint_logs_dataset",
        )
        ctx.accept_no_cmek(self.logs_dataset, "CKV_GCP_81")
        self.endpoint = named(
            VertexAiEndpoint(
                self,
                "endpoint",
                name=ctx.settings.predictor.endpoint_id,
                display_name=ctx.infra.endpoint.display_name,
                description="Forecasts for the on_sale function and batch callers",
                location=ctx.region,
                region=ctx.region,
                project=ctx.project,
                encryption_spec={"kms_key_name": key} if key else None,
                predict_request_response_logging_config={
                    "enabled": True,
                    "sampling_rate": ctx.infra.endpoint.logging_sampling_rate,
                    # Dataset only: Vertex creates its request_response_logging table in it.
                    "bigquery_destination": {
                        "output_uri": f"bq://{ctx.project}.{self.logs_dataset_id}"
                    },
                },
                deletion_policy="PREVENT" if ctx.deletion_protection else None,
                labels=ctx.labels("serving"),
                depends_on=[self.logs_dataset, *ctx.kms_grants],
            ),
            "endpoint_forecast",
        )
        ctx.accept_no_cmek(self.endpoint, "CKV2_GCP_24")
        checkov_skip(
            self.endpoint,
            "CKV2_GCP_33",
            "callers are authenticated by IAM (aiplatform.user only for the function and pipeline "
            "identities); a Private Service Connect endpoint needs a VPC and VPC egress for the "
            "function, which this project does not have yet (docs/infra.md, follow-ups)",
        )
