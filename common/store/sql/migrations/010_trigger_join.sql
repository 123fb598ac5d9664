-- The update trigger joins its transition tables (new_rows to old_rows by id). PL/pgSQL plans
-- that join once per connection, when its first UPDATE runs, and keeps the plan: a first
-- statement of one row makes it a nested loop, so every later batch of n rows compared n^2
-- pairs (16,002 for a claim of 127 jobs; 13-26 us of Postgres CPU per job in `djs bench`
-- batch). Without nested loops the cached plan is a hash or merge join, linear whatever
-- the first statement was.
ALTER FUNCTION djs_events_on_update() SET enable_nestloop = off;
