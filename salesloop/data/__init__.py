"""The input side of the data layer: a calibrated sales generator, validation and file ingest.

Real data and generated data enter the warehouse through the same path (:mod:`.ingest` →
:mod:`.validate` → ``Warehouse.insert_job``), so the loop has no code path that only demos use.
Submodules are imported where needed (``salesloop.data.generate`` etc.) so that importing the
validator does not pull in the generator's Parquet and progress-bar machinery.
"""
