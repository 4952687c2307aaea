"""The BigQuery tables of each stack are exactly salesloop.schemas.TABLES, nothing hand-written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from salesloop.config import load_settings
from salesloop.schemas import TABLES, bigquery_schema_json, bigquery_time_partitioning


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_tables_match_the_schema_module(env: str, synth_configs: dict[str, dict[str, Any]]) -> None:
    settings = load_settings(env)
    tables = synth_configs[env]["resource"]["google_bigquery_table"]
    by_table_id = {t["table_id"]: t for t in tables.values()}
    assert set(by_table_id) == {settings.table(logical) for logical in TABLES}
    for logical, table in TABLES.items():
        tf = by_table_id[settings.table(logical)]
        expected = [
            {k: v for k, v in f.items() if k != "description" or v}
            for f in bigquery_schema_json(table)
        ]
        assert json.loads(tf["schema"]) == expected, logical
        assert [f["name"] for f in json.loads(tf["schema"])] == table.column_names
        assert tf.get("time_partitioning") == bigquery_time_partitioning(table), logical
        assert tf.get("clustering", []) == list(table.cluster_by), logical
        assert tf["description"] == table.description
        assert tf["dataset_id"] == "${google_bigquery_dataset.warehouse_dataset.dataset_id}"


def test_sales_trigger_filters_on_the_sales_table(synth_configs: dict[str, dict[str, Any]]) -> None:
    for env, config in synth_configs.items():
        settings = load_settings(env)
        fn = config["resource"]["google_cloudfunctions2_function"]["function_on_sale"]
        filters = {f["attribute"]: f["value"] for f in fn["event_trigger"]["event_filters"]}
        assert filters["resourceName"] == (
            f"projects/{settings.project}/datasets/{settings.warehouse.dataset}"
            f"/tables/{settings.table('sales')}"
        )
