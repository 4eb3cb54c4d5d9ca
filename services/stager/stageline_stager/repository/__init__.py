"""The stager's Postgres statements, one module per table family, all on the batch's connection.

Every function takes the asyncpg connection under the batch's transaction (`Connection`, from
connection.py) and runs its statements there: raw asyncpg for binary COPY and one round trip per
table per batch. The transaction itself is the checkpoint's (checkpoint.py); what to write is
decided by the planners (plan.py, merges.py).
"""
