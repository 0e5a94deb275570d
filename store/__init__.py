"""Store: transaction, decision, case and audit stores; field encryption."""
