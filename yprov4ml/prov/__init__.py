"""The PROV layer: record → PROV document, decoding documents back, validation, pictures."""
