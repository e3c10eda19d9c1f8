"""CRM data: the canonical model, validation, the warehouse, source adapters and the simulator."""
