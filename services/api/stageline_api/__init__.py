"""The read API for CRM tools: stage counts, customers and timelines."""
