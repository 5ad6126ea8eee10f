-- A report that is a FHIR Bundle keeps its resources as structured content: sealed JSON under
-- the report's key (like `meta`), which the FHIR API searches for whoever may see the report.
ALTER TABLE records ADD COLUMN resources BLOB;
