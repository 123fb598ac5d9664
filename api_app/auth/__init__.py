"""Access control: API keys, roles and the Chalice custom authorizer."""
