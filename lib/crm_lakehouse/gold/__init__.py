"""Gold: the customer-360 and sales marts, updated from silver's change feed by MERGE."""
