"""The catalog: cases, members, transitions, documents, versions, users, tokens (SQLAlchemy 2)."""
