"""What compliance staff review (#13): the figures of the Governance page and of the period
report, read from the evidence and the ledgers (``figures``). Ids, counts, hashes and instants
only: nothing here ever reads a personal field."""
