"""Database: engine and pool, schema, migrations, queries, maintenance reports."""
