-- A request that stopped part-way (partial) still holds its root: it is finished by resuming
-- it, and a second request for the same root would race it.
DROP INDEX requests_open_root_key;
CREATE UNIQUE INDEX requests_open_root_key ON requests (kind, target, root_key)
    WHERE state IN ('pending', 'approved', 'running', 'partial');
