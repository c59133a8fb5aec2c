-- The fleet: deployments of catalog models onto GPUs, their replicas, what happened to them, the GPU inventory
-- the driver reports, and the lease that lets one server replica run the controller. Desired state (the
-- deployment) is written by admins; observed state (replicas, nodes) by the controller. Keep this file and its
-- twin in step.

CREATE TABLE fleet_deployments (
    id TEXT PRIMARY KEY,
    model_id TEXT NOT NULL REFERENCES models(id),
    spec TEXT NOT NULL,                  -- JSON of domain::fleet::DeploymentInput
    generation BIGINT NOT NULL,          -- bumped when the engine arguments change (replicas roll over)
    desired_replicas BIGINT NOT NULL,    -- the autoscaler's current answer
    scale_reason TEXT,
    condition TEXT,                      -- a problem for an admin, in words; NULL when none
    deleting BIGINT NOT NULL DEFAULT 0,  -- 1: draining its replicas, then the row goes
    gpu_ms BIGINT NOT NULL DEFAULT 0,    -- GPU-milliseconds of replicas that have stopped
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- One live deployment per model (a deleted one may still be draining beside its successor).
CREATE UNIQUE INDEX fleet_deployments_live_model ON fleet_deployments (model_id) WHERE deleting = 0;

CREATE TABLE fleet_replicas (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES fleet_deployments(id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    state TEXT NOT NULL,                 -- pending, starting, ready, draining, stopped, failed
    node TEXT,
    gpus TEXT NOT NULL DEFAULT '',       -- GPU indices on the node, comma-separated
    handle TEXT,                         -- the driver's handle (adopted after a controller restart)
    base_url TEXT,
    restarts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    reason TEXT,                         -- why it is pending, or what it waits for
    since BIGINT NOT NULL,               -- when it entered its state
    next_attempt_at BIGINT,              -- a failed replica's restart time
    gpu_since BIGINT,                    -- since when it holds GPUs (NULL: none)
    drain_until BIGINT,                  -- a draining replica is stopped by then at the latest
    created_at BIGINT NOT NULL
);
CREATE INDEX fleet_replicas_deployment ON fleet_replicas (deployment_id, state);

CREATE TABLE fleet_events (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,         -- kept after the deployment is deleted
    replica_id TEXT,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX fleet_events_deployment ON fleet_events (deployment_id, at);

CREATE TABLE fleet_nodes (
    name TEXT PRIMARY KEY,
    schedulable BIGINT NOT NULL,
    gpus TEXT NOT NULL,                  -- JSON: index, product, memory_mib, healthy
    seen_at BIGINT NOT NULL
);

CREATE TABLE fleet_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- A request waits for a model with no replica (scaled to zero): the gateway marks it here, the controller wakes it.
CREATE TABLE fleet_demand (
    model_id TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);

INSERT INTO revisions (name, value) VALUES ('routes', 0);
