//! Placement: which GPUs a replica gets, decided from the inventory alone (no IO, deterministic).
//!
//! A replica's GPUs are all on one node. A GPU is *eligible* for a [`Requirement`] when it is healthy, has at least
//! `min_memory_mib` and, if the requirement names products, is one of them (compared case-insensitively); it is
//! *free* when no replica holds it. Cordoned nodes (`schedulable: false`) are never used.
//!
//! **Packing: best fit.** Among the nodes with enough eligible free GPUs, [`place`] takes the one with the
//! *fewest* (ties: the lowest node name), and on it the lowest GPU indices. Small replicas thereby fill the gaps
//! that earlier ones left, and whole free nodes stay whole for large tensor-parallel replicas: a 2-GPU replica goes
//! to a node with 2 free, never into an empty 8-GPU node. The trade-off: replicas are concentrated rather than
//! spread, so losing one node takes more replicas with it, and replicas of one deployment may share a node (spreading
//! them is the controller's business, e.g. by excluding nodes); NVLink or PCIe topology inside a node is not
//! considered (the lowest free indices are taken).
//!
//! **Preemption** comes only when nothing fits on free GPUs: GPUs held by replicas of strictly lower priority are
//! reclaimable, and a victim frees all its GPUs on the node. The node and victim set chosen evict the fewest
//! replicas, then the lowest total priority, then the lowest node name. Equal or higher priority is never preempted.
//!
//! **Refusals** say why in an admin's words, from the most fundamental reason down: no GPU at all, a node too
//! small, a product that is not here, too little memory, too few such GPUs on any node, and only then what is free
//! ("needs 4 x H100-80GB with at least 80 GiB on one node; the largest free block is 2 (node gpu-a)").
//!
//! Cost: one pass over the inventory to index it, then one pass per decision: O(nodes x GPUs). Preemption adds a
//! small knapsack per node over its reclaimable replicas (bounded by the GPUs on one node); [`place_all`] indexes
//! once for many requirements.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One GPU as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// The index on its node (what `CUDA_VISIBLE_DEVICES` takes).
    pub index: u32,
    /// The product, e.g. `H100-80GB`.
    pub product: String,
    pub memory_mib: u64,
    pub healthy: bool,
    /// The replica holding it, if any.
    pub holder: Option<Holder>,
}

/// The replica that holds a GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub replica: String,
    pub deployment: String,
    pub priority: i32,
}

/// A machine with GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// False while the node is cordoned: nothing new is placed on it.
    pub schedulable: bool,
    pub gpus: Vec<Gpu>,
}

/// What one replica needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// GPUs per replica (the tensor-parallel size), all on one node.
    pub gpus: u32,
    /// The least memory each GPU must have (0: any).
    pub min_memory_mib: u64,
    /// Allowed products, compared case-insensitively; empty = any product.
    pub products: Vec<String>,
    /// Higher preempts strictly lower.
    pub priority: i32,
    pub deployment: String,
}

/// Where a replica goes, or why it cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// On free GPUs; `gpus` are indices on `node`, ascending.
    Placed { node: String, gpus: Vec<u32> },
    /// Fits only by draining lower-priority replicas (strictly lower priority) on one node: drain `victims`
    /// (replica names, sorted), then start on `gpus` (ascending; free now or held by a victim).
    Preempt {
        node: String,
        gpus: Vec<u32>,
        victims: Vec<String>,
    },
    /// Nothing fits, even by preemption; `reason` is for a platform admin.
    Refused { reason: String },
}

/// The eligible free GPUs of one node, for the portal's "largest free block".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeBlock {
    pub node: String,
    pub free: u32,
}

/// Where one replica goes, given the inventory now. See the module's documentation for the rules.
pub fn place(nodes: &[Node], req: &Requirement) -> Outcome {
    let inv = Inventory::new(nodes, false);
    let plan = inv.decide(req);
    inv.outcome(plan)
}

/// Places several replicas in one pass, in order, each seeing the ones placed before it. Returns one outcome per
/// requirement and the inventory after the `Placed` ones, whose GPUs are held by `Holder { replica: "r{i}", .. }`
/// (`i` the requirement's position). `Preempt` outcomes are returned but not applied: their victims still hold
/// their GPUs in the returned inventory, and later requirements may name a replica placed earlier in the pass as
/// a victim. Indexes the inventory once, so it is cheaper than calling [`place`] in a loop.
pub fn place_all(nodes: &[Node], reqs: &[Requirement]) -> (Vec<Outcome>, Vec<Node>) {
    let mut working = nodes.to_vec();
    let mut inv = Inventory::new(&working, false);
    let mut outcomes = Vec::with_capacity(reqs.len());
    for (i, req) in reqs.iter().enumerate() {
        let plan = inv.decide(req);
        if let Plan::Placed { node, slots } = &plan {
            let holder = Holder {
                replica: format!("r{i}"),
                deployment: req.deployment.clone(),
                priority: req.priority,
            };
            let id = inv.intern_holder(&holder.replica, holder.priority);
            for &si in slots {
                if let Some(slot) = inv.slots.get_mut(si) {
                    slot.holder = id;
                    if let Some(gpu) = working
                        .get_mut(*node)
                        .and_then(|n| n.gpus.get_mut(slot.pos as usize))
                    {
                        gpu.holder = Some(holder.clone());
                    }
                }
            }
            if let Some(free) = inv.free.get_mut(*node) {
                *free = free.saturating_sub(slots.len() as u32);
            }
        }
        outcomes.push(inv.outcome(plan));
    }
    (outcomes, working)
}

/// Whether `req` could ever be met by this inventory, counting every node (cordoned ones too) and ignoring health
/// and holders: the check for a deployment's 400 ("more GPUs than any node has", "unknown GPU product").
/// The error is the same sentence [`place`] would refuse with.
pub fn check(nodes: &[Node], req: &Requirement) -> Result<(), String> {
    let inv = Inventory::new(nodes, true);
    let want = inv.want(req);
    match inv.static_problem(req, &want) {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

/// Eligible free GPUs per schedulable node, largest first (ties by node name); nodes with none are left out.
pub fn free_blocks(nodes: &[Node], req: &Requirement) -> Vec<FreeBlock> {
    let inv = Inventory::new(nodes, false);
    let want = inv.want(req);
    let mut blocks: Vec<FreeBlock> = inv
        .order
        .iter()
        .filter_map(|&n| {
            let free = inv.node_slots(n).iter().filter(|s| want.free(s)).count() as u32;
            (free > 0).then(|| FreeBlock {
                node: inv.names[n].clone(),
                free,
            })
        })
        .collect();
    blocks.sort_by(|a, b| b.free.cmp(&a.free).then_with(|| a.node.cmp(&b.node)));
    blocks
}

/// Held GPUs / healthy GPUs over every node (cordoned ones too); unhealthy GPUs count in neither. 0 when no GPU
/// is healthy.
pub fn utilisation(nodes: &[Node]) -> f64 {
    let (mut healthy, mut held) = (0u64, 0u64);
    for gpu in nodes.iter().flat_map(|n| &n.gpus).filter(|g| g.healthy) {
        healthy += 1;
        held += u64::from(gpu.holder.is_some());
    }
    if healthy == 0 {
        0.0
    } else {
        held as f64 / healthy as f64
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The index every decision runs on.

const FREE: u32 = u32::MAX;

/// A GPU, flattened: its product and holder interned.
#[derive(Debug, Clone, Copy)]
struct Slot {
    index: u32,
    /// Its position in `Node::gpus`.
    pos: u32,
    product: u32,
    memory_mib: u64,
    healthy: bool,
    /// An index into `Inventory::holders`, or `FREE`.
    holder: u32,
}

struct Inventory {
    names: Vec<String>,
    /// Each node's slots in `slots`, sorted by GPU index.
    spans: Vec<(usize, usize)>,
    /// Each node's healthy GPUs that nobody holds (any product): a quick bound before scanning.
    free: Vec<u32>,
    /// The nodes decisions consider, sorted by name (then input order): ties go to the lowest name.
    order: Vec<usize>,
    /// Nodes left out of `order` (cordoned).
    cordoned: usize,
    slots: Vec<Slot>,
    /// Display spelling (the first seen) by product id.
    products: Vec<String>,
    product_ids: HashMap<String, u32>,
    /// Replica name and priority (the highest seen for that name) by holder id.
    holders: Vec<(String, i32)>,
    holder_ids: HashMap<String, u32>,
}

/// A requirement resolved against the inventory's product ids.
struct Want {
    gpus: u32,
    min_memory_mib: u64,
    /// Accepted product ids; `None` = any.
    accept: Option<Vec<bool>>,
    priority: i32,
}

impl Want {
    /// Product and memory match, whatever the GPU's health and holder.
    fn matches(&self, s: &Slot) -> bool {
        s.memory_mib >= self.min_memory_mib && self.product_ok(s)
    }
    fn product_ok(&self, s: &Slot) -> bool {
        match &self.accept {
            None => true,
            Some(accept) => accept.get(s.product as usize).copied().unwrap_or(false),
        }
    }
    fn eligible(&self, s: &Slot) -> bool {
        s.healthy && self.matches(s)
    }
    fn free(&self, s: &Slot) -> bool {
        s.holder == FREE && self.eligible(s)
    }
}

/// A decision in index terms; `slots` are indices into `Inventory::slots`.
enum Plan {
    Placed {
        node: usize,
        slots: Vec<usize>,
    },
    Preempt {
        node: usize,
        slots: Vec<usize>,
        victims: Vec<String>,
    },
    Refused(String),
}

impl Inventory {
    /// `all_nodes`: consider cordoned nodes too (for [`check`]).
    fn new(nodes: &[Node], all_nodes: bool) -> Self {
        let total: usize = nodes.iter().map(|n| n.gpus.len()).sum();
        let mut inv = Inventory {
            names: Vec::with_capacity(nodes.len()),
            spans: Vec::with_capacity(nodes.len()),
            free: Vec::with_capacity(nodes.len()),
            order: Vec::with_capacity(nodes.len()),
            cordoned: 0,
            slots: Vec::with_capacity(total),
            products: Vec::new(),
            product_ids: HashMap::new(),
            holders: Vec::new(),
            holder_ids: HashMap::new(),
        };
        // Consecutive GPUs nearly always share a product: skip the lowercase-and-hash for them.
        let mut last: Option<(&str, u32)> = None;
        for (n, node) in nodes.iter().enumerate() {
            let start = inv.slots.len();
            let mut free = 0;
            for (pos, gpu) in node.gpus.iter().enumerate() {
                let product = match last {
                    Some((p, id)) if p == gpu.product => id,
                    _ => {
                        let id = inv.intern_product(&gpu.product);
                        last = Some((&gpu.product, id));
                        id
                    }
                };
                let holder = match &gpu.holder {
                    None => FREE,
                    Some(h) => inv.intern_holder(&h.replica, h.priority),
                };
                free += u32::from(gpu.healthy && holder == FREE);
                inv.slots.push(Slot {
                    index: gpu.index,
                    pos: pos as u32,
                    product,
                    memory_mib: gpu.memory_mib,
                    healthy: gpu.healthy,
                    holder,
                });
            }
            inv.slots[start..].sort_by_key(|s| (s.index, s.pos));
            inv.spans.push((start, inv.slots.len()));
            inv.free.push(free);
            inv.names.push(node.name.clone());
            if node.schedulable || all_nodes {
                inv.order.push(n);
            } else {
                inv.cordoned += 1;
            }
        }
        let names = &inv.names;
        inv.order
            .sort_by(|&a, &b| names[a].cmp(&names[b]).then(a.cmp(&b)));
        inv
    }

    fn intern_product(&mut self, product: &str) -> u32 {
        let key = product.to_ascii_lowercase();
        if let Some(&id) = self.product_ids.get(&key) {
            return id;
        }
        let id = self.products.len() as u32;
        self.products.push(product.to_string());
        self.product_ids.insert(key, id);
        id
    }

    fn intern_holder(&mut self, replica: &str, priority: i32) -> u32 {
        if let Some(&id) = self.holder_ids.get(replica) {
            if let Some(h) = self.holders.get_mut(id as usize) {
                h.1 = h.1.max(priority);
            }
            return id;
        }
        let id = self.holders.len() as u32;
        self.holders.push((replica.to_string(), priority));
        self.holder_ids.insert(replica.to_string(), id);
        id
    }

    fn node_slots(&self, n: usize) -> &[Slot] {
        let (start, end) = self.spans[n];
        &self.slots[start..end]
    }

    fn want(&self, req: &Requirement) -> Want {
        let accept = (!req.products.is_empty()).then(|| {
            let mut accept = vec![false; self.products.len()];
            for p in &req.products {
                if let Some(&id) = self.product_ids.get(&p.to_ascii_lowercase()) {
                    accept[id as usize] = true;
                }
            }
            accept
        });
        Want {
            gpus: req.gpus,
            min_memory_mib: req.min_memory_mib,
            accept,
            priority: req.priority,
        }
    }

    fn decide(&self, req: &Requirement) -> Plan {
        if req.gpus == 0 {
            return Plan::Refused("a replica needs at least 1 GPU".into());
        }
        let want = self.want(req);
        if let Some(node) = self.best_fit(&want) {
            let (start, _) = self.spans[node];
            let slots = self
                .node_slots(node)
                .iter()
                .enumerate()
                .filter(|(_, s)| want.free(s))
                .take(want.gpus as usize)
                .map(|(i, _)| start + i)
                .collect();
            return Plan::Placed { node, slots };
        }
        if let Some((node, victims)) = self.preemption(&want) {
            let (start, _) = self.spans[node];
            let slots = self
                .node_slots(node)
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    want.eligible(s) && (s.holder == FREE || victims.contains(&s.holder))
                })
                .take(want.gpus as usize)
                .map(|(i, _)| start + i)
                .collect();
            let victims = victims
                .iter()
                .map(|&v| self.holders[v as usize].0.clone())
                .collect();
            return Plan::Preempt {
                node,
                slots,
                victims,
            };
        }
        Plan::Refused(
            self.static_problem(req, &want)
                .unwrap_or_else(|| self.free_problem(req, &want)),
        )
    }

    /// The node with the fewest eligible free GPUs that are still enough (ties: the first in `order`).
    fn best_fit(&self, want: &Want) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for &n in &self.order {
            if self.free[n] < want.gpus {
                continue;
            }
            let limit = best.map_or(u32::MAX, |(_, count)| count);
            let mut count = 0;
            for slot in self.node_slots(n) {
                if want.free(slot) {
                    count += 1;
                    if count >= limit {
                        break;
                    }
                }
            }
            if count >= want.gpus && count < limit {
                best = Some((n, count));
                if count == want.gpus {
                    break; // nothing can fit tighter, and later nodes lose ties
                }
            }
        }
        best.map(|(n, _)| n)
    }

    /// The node and victims (holder ids, sorted by replica name) that evict the fewest replicas, then the lowest
    /// total priority, then the first node in `order`.
    fn preemption(&self, want: &Want) -> Option<(usize, Vec<u32>)> {
        let mut best: Option<(usize, i64, usize, Vec<u32>)> = None;
        let mut held: Vec<u32> = Vec::new();
        for &n in &self.order {
            held.clear();
            let mut free = 0u32;
            for slot in self.node_slots(n).iter().filter(|s| want.eligible(s)) {
                if slot.holder == FREE {
                    free += 1;
                } else if self.holders[slot.holder as usize].1 < want.priority {
                    held.push(slot.holder);
                }
            }
            if held.is_empty() || free >= want.gpus {
                continue;
            }
            let need = want.gpus - free;
            if (held.len() as u64) < u64::from(need) {
                continue;
            }
            held.sort_unstable();
            // (holder, GPUs it frees here, priority), sorted by replica name.
            let mut items: Vec<(u32, u32, i64)> = Vec::new();
            for &h in &held {
                match items.last_mut() {
                    Some(last) if last.0 == h => last.1 += 1,
                    _ => items.push((h, 1, i64::from(self.holders[h as usize].1))),
                }
            }
            items.sort_by(|a, b| {
                self.holders[a.0 as usize]
                    .0
                    .cmp(&self.holders[b.0 as usize].0)
            });
            let Some((chosen, cost)) = choose_victims(&items, need) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((_, best_cost, best_count, _)) => {
                    (chosen.len(), cost) < (*best_count, *best_cost)
                }
            };
            if better {
                let victims = chosen.iter().map(|&i| items[i].0).collect();
                best = Some((n, cost, chosen.len(), victims));
            }
        }
        best.map(|(n, _, _, victims)| (n, victims))
    }

    /// Why `req` can never fit on the nodes considered, whatever is free; `None` if it could.
    fn static_problem(&self, req: &Requirement, want: &Want) -> Option<String> {
        if req.gpus == 0 {
            return Some("a replica needs at least 1 GPU".into());
        }
        if self.order.is_empty() {
            return Some(if self.cordoned == 0 {
                "there are no GPU nodes".into()
            } else {
                format!("no node is schedulable ({} cordoned)", self.cordoned)
            });
        }
        let scope = if self.cordoned == 0 {
            "node"
        } else {
            "schedulable node"
        };
        let largest = self
            .order
            .iter()
            .map(|&n| self.node_slots(n).len())
            .max()
            .unwrap_or(0);
        if (largest as u64) < u64::from(req.gpus) {
            return Some(format!(
                "needs {} on one node; the largest {scope} has {largest}",
                count_gpus(req.gpus)
            ));
        }
        let considered = || self.order.iter().flat_map(|&n| self.node_slots(n));
        if !req.products.is_empty() && !considered().any(|s| want.product_ok(s)) {
            let mut here: Vec<&str> = Vec::new();
            for &n in &self.order {
                for s in self.node_slots(n) {
                    let p = self.products[s.product as usize].as_str();
                    if !here.contains(&p) {
                        here.push(p);
                    }
                }
            }
            here.sort_by_key(|p| p.to_ascii_lowercase());
            let here = if here.is_empty() {
                "none".to_string()
            } else {
                here.join(", ")
            };
            return Some(format!(
                "no {scope} has {} GPUs (products here: {here})",
                req.products.join(" or ")
            ));
        }
        if req.min_memory_mib > 0 {
            let most = considered()
                .filter(|s| want.product_ok(s))
                .map(|s| s.memory_mib)
                .max()
                .unwrap_or(0);
            if most < req.min_memory_mib {
                let what = if req.products.is_empty() {
                    "GPU".to_string()
                } else {
                    format!("{} GPU", req.products.join(" or "))
                };
                return Some(format!(
                    "no {what} has at least {} (the largest has {})",
                    memory(req.min_memory_mib),
                    memory(most)
                ));
            }
        }
        let (most, node) = self.largest(|s| want.matches(s));
        if most < req.gpus {
            return Some(format!(
                "needs {} on one node; the most on one {scope} is {most} (node {})",
                describe(req),
                self.names[node]
            ));
        }
        None
    }

    /// Why `req` does not fit now, when it could on an empty fleet.
    fn free_problem(&self, req: &Requirement, want: &Want) -> String {
        let (most, node) = self.largest(|s| want.free(s));
        if most > 0 {
            return format!(
                "needs {} on one node; the largest free block is {most} (node {})",
                describe(req),
                self.names[node]
            );
        }
        let (mut held, mut unhealthy) = (0, 0);
        for s in self.order.iter().flat_map(|&n| self.node_slots(n)) {
            if want.matches(s) {
                if !s.healthy {
                    unhealthy += 1;
                } else if s.holder != FREE {
                    held += 1;
                }
            }
        }
        let mut why = Vec::new();
        if held > 0 {
            why.push(format!("{held} held"));
        }
        if unhealthy > 0 {
            why.push(format!("{unhealthy} unhealthy"));
        }
        format!(
            "needs {} on one node; none is free ({})",
            describe(req),
            why.join(", ")
        )
    }

    /// The most slots passing `keep` on one considered node, and the first such node.
    fn largest(&self, keep: impl Fn(&Slot) -> bool) -> (u32, usize) {
        let mut best = (0u32, self.order.first().copied().unwrap_or(0));
        for &n in &self.order {
            let count = self.node_slots(n).iter().filter(|s| keep(s)).count() as u32;
            if count > best.0 {
                best = (count, n);
            }
        }
        best
    }

    fn outcome(&self, plan: Plan) -> Outcome {
        let gpus = |slots: &[usize]| slots.iter().map(|&i| self.slots[i].index).collect();
        match plan {
            Plan::Placed { node, slots } => Outcome::Placed {
                node: self.names[node].clone(),
                gpus: gpus(&slots),
            },
            Plan::Preempt {
                node,
                slots,
                victims,
            } => Outcome::Preempt {
                node: self.names[node].clone(),
                gpus: gpus(&slots),
                victims,
            },
            Plan::Refused(reason) => Outcome::Refused { reason },
        }
    }
}

/// The fewest items whose GPUs reach `need`, and among those the lowest total priority; ties go to the items
/// earliest in `items`. Returns the chosen positions (ascending) and their total priority.
///
/// A knapsack over (items taken, GPUs freed capped at `need`): O(items x taken x need), all bounded by the GPUs on
/// one node. Past a size no real node reaches, it falls back to taking the largest, then lowest-priority, items.
fn choose_victims(items: &[(u32, u32, i64)], need: u32) -> Option<(Vec<usize>, i64)> {
    let need = need as usize;
    // The fewest items that can reach `need`: the largest first.
    let mut sizes: Vec<usize> = items.iter().map(|i| i.1 as usize).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let mut sum = 0;
    let fewest = sizes.iter().position(|&s| {
        sum += s;
        sum >= need
    })? + 1;

    let width = need + 1;
    let cells = (fewest + 1) * width;
    if items.len().saturating_mul(cells) > 1 << 16 {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| {
            items[b]
                .1
                .cmp(&items[a].1)
                .then(items[a].2.cmp(&items[b].2))
        });
        let mut chosen: Vec<usize> = order.into_iter().take(fewest).collect();
        chosen.sort_unstable();
        let cost = chosen.iter().map(|&i| items[i].2).sum();
        return Some((chosen, cost));
    }

    // best[k * width + s]: the lowest total priority of k items freeing s GPUs (capped at need).
    let mut best: Vec<Option<i64>> = vec![None; cells];
    best[0] = Some(0);
    // from[(v * cells) + k * width + s]: item v improved (k, s), coming from (k - 1, the value stored).
    let mut from: Vec<Option<usize>> = vec![None; items.len() * cells];
    for (v, item) in items.iter().enumerate() {
        for k in (1..=fewest).rev() {
            for s in 0..width {
                let Some(cost) = best[(k - 1) * width + s] else {
                    continue;
                };
                let to = (s + item.1 as usize).min(need);
                let cost = cost + item.2;
                let cell = k * width + to;
                if best[cell].is_none_or(|c| cost < c) {
                    best[cell] = Some(cost);
                    from[v * cells + cell] = Some(s);
                }
            }
        }
    }
    let cost = best[fewest * width + need]?;
    let mut chosen = Vec::with_capacity(fewest);
    let (mut k, mut s) = (fewest, need);
    for v in (0..items.len()).rev() {
        if k == 0 {
            break;
        }
        if let Some(prev) = from[v * cells + k * width + s] {
            chosen.push(v);
            k -= 1;
            s = prev;
        }
    }
    chosen.reverse();
    Some((chosen, cost))
}

fn count_gpus(n: u32) -> String {
    if n == 1 {
        "1 GPU".into()
    } else {
        format!("{n} GPUs")
    }
}

/// "4 x H100-80GB with at least 80 GiB", "2 GPUs".
fn describe(req: &Requirement) -> String {
    let mut what = if req.products.is_empty() {
        count_gpus(req.gpus)
    } else {
        format!("{} x {}", req.gpus, req.products.join(" or "))
    };
    if req.min_memory_mib > 0 {
        what.push_str(" with at least ");
        what.push_str(&memory(req.min_memory_mib));
    }
    what
}

/// "80 GiB", "79.6 GiB", "512 MiB".
fn memory(mib: u64) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else if mib >= 1024 {
        format!("{:.1} GiB", mib as f64 / 1024.0)
    } else {
        format!("{mib} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024;
    const H100: &str = "H100-80GB";
    const A100: &str = "A100-40GB";

    fn gpu(index: u32, product: &str, gib: u64) -> Gpu {
        Gpu {
            index,
            product: product.into(),
            memory_mib: gib * GIB,
            healthy: true,
            holder: None,
        }
    }

    fn node(name: &str, product: &str, gib: u64, count: u32) -> Node {
        Node {
            name: name.into(),
            schedulable: true,
            gpus: (0..count).map(|i| gpu(i, product, gib)).collect(),
        }
    }

    fn h100(name: &str, count: u32) -> Node {
        node(name, H100, 80, count)
    }

    fn a100(name: &str, count: u32) -> Node {
        node(name, A100, 40, count)
    }

    /// `node` with GPUs `indices` held by `replica` at `priority`.
    fn hold(mut node: Node, indices: &[u32], replica: &str, priority: i32) -> Node {
        for g in node.gpus.iter_mut().filter(|g| indices.contains(&g.index)) {
            g.holder = Some(Holder {
                replica: replica.into(),
                deployment: format!("d-{replica}"),
                priority,
            });
        }
        node
    }

    fn unhealthy(mut node: Node, indices: &[u32]) -> Node {
        for g in node.gpus.iter_mut().filter(|g| indices.contains(&g.index)) {
            g.healthy = false;
        }
        node
    }

    fn cordoned(mut node: Node) -> Node {
        node.schedulable = false;
        node
    }

    fn req(gpus: u32) -> Requirement {
        Requirement {
            gpus,
            min_memory_mib: 0,
            products: vec![],
            priority: 0,
            deployment: "d".into(),
        }
    }

    fn of(gpus: u32, products: &[&str]) -> Requirement {
        Requirement {
            products: products.iter().map(|p| p.to_string()).collect(),
            ..req(gpus)
        }
    }

    fn with_memory(mut r: Requirement, gib: u64) -> Requirement {
        r.min_memory_mib = gib * GIB;
        r
    }

    fn at(mut r: Requirement, priority: i32) -> Requirement {
        r.priority = priority;
        r
    }

    fn placed(node: &str, gpus: &[u32]) -> Outcome {
        Outcome::Placed {
            node: node.into(),
            gpus: gpus.to_vec(),
        }
    }

    fn preempt(node: &str, gpus: &[u32], victims: &[&str]) -> Outcome {
        Outcome::Preempt {
            node: node.into(),
            gpus: gpus.to_vec(),
            victims: victims.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn refused(reason: &str) -> Outcome {
        Outcome::Refused {
            reason: reason.into(),
        }
    }

    struct Case {
        name: &'static str,
        nodes: Vec<Node>,
        req: Requirement,
        want: Outcome,
    }

    fn run(cases: Vec<Case>) {
        for case in cases {
            let got = place(&case.nodes, &case.req);
            assert_eq!(got, case.want, "case: {}", case.name);
            // Whatever the order of the nodes, the same answer.
            let mut reversed = case.nodes.clone();
            reversed.reverse();
            assert_eq!(
                place(&reversed, &case.req),
                case.want,
                "case (nodes reversed): {}",
                case.name
            );
        }
    }

    #[test]
    fn packing_keeps_whole_nodes_free() {
        run(vec![
            Case {
                name: "a 2-GPU replica goes to the node with 2 free, not the empty 8-GPU node",
                nodes: vec![
                    h100("big", 8),
                    hold(h100("busy", 8), &[0, 1, 2, 3, 4, 5], "x", 0),
                ],
                req: req(2),
                want: placed("busy", &[6, 7]),
            },
            Case {
                name: "the smallest block that is enough, not the first",
                nodes: vec![
                    hold(h100("a", 8), &[0, 1, 2, 3, 4], "x", 0), // 3 free
                    hold(h100("b", 8), &[0, 1, 2, 3, 4, 5, 6], "y", 0), // 1 free
                    hold(h100("c", 8), &[0, 1, 2], "z", 0),       // 5 free
                ],
                req: req(3),
                want: placed("a", &[5, 6, 7]),
            },
            Case {
                name: "too big for the partly used node: the empty one",
                nodes: vec![
                    h100("big", 8),
                    hold(h100("busy", 8), &[0, 1, 2, 3, 4, 5], "x", 0),
                ],
                req: req(3),
                want: placed("big", &[0, 1, 2]),
            },
            Case {
                name: "lowest free indices, gaps included",
                nodes: vec![hold(h100("a", 8), &[0, 2, 3, 5], "x", 0)],
                req: req(3),
                want: placed("a", &[1, 4, 6]),
            },
            Case {
                name: "equal blocks: the lowest node name",
                nodes: vec![h100("gpu-c", 4), h100("gpu-a", 4), h100("gpu-b", 4)],
                req: req(4),
                want: placed("gpu-a", &[0, 1, 2, 3]),
            },
            Case {
                name: "GPUs listed out of index order: still the lowest indices",
                nodes: vec![Node {
                    name: "a".into(),
                    schedulable: true,
                    gpus: vec![gpu(3, H100, 80), gpu(1, H100, 80), gpu(2, H100, 80)],
                }],
                req: req(2),
                want: placed("a", &[1, 2]),
            },
            Case {
                name: "the block counts only eligible GPUs",
                nodes: vec![
                    // 2 H100 free among 8 free: the tightest H100 block.
                    Node {
                        name: "mixed".into(),
                        schedulable: true,
                        gpus: (0..8)
                            .map(|i| gpu(i, if i < 2 { H100 } else { A100 }, 80))
                            .collect(),
                    },
                    h100("plain", 4),
                ],
                req: of(2, &[H100]),
                want: placed("mixed", &[0, 1]),
            },
        ]);
    }

    #[test]
    fn products_memory_health_and_cordons() {
        run(vec![
            Case {
                name: "products compare case-insensitively",
                nodes: vec![a100("a", 8), h100("b", 8)],
                req: of(4, &["h100-80gb"]),
                want: placed("b", &[0, 1, 2, 3]),
            },
            Case {
                name: "any of several products",
                nodes: vec![a100("a", 8), h100("b", 2)],
                req: of(2, &["H200", "A100-40GB"]),
                want: placed("a", &[0, 1]),
            },
            Case {
                name: "memory filter",
                nodes: vec![a100("a", 2), h100("b", 8)],
                req: with_memory(req(2), 80),
                want: placed("b", &[0, 1]),
            },
            Case {
                name: "unhealthy GPUs are skipped",
                nodes: vec![unhealthy(h100("a", 2), &[1]), h100("b", 8)],
                req: req(2),
                want: placed("b", &[0, 1]),
            },
            Case {
                name: "an unhealthy GPU leaves a gap",
                nodes: vec![unhealthy(h100("a", 4), &[0, 2])],
                req: req(2),
                want: placed("a", &[1, 3]),
            },
            Case {
                name: "cordoned nodes are skipped",
                nodes: vec![cordoned(h100("a", 2)), h100("b", 8)],
                req: req(2),
                want: placed("b", &[0, 1]),
            },
        ]);
    }

    #[test]
    fn preemption_order() {
        run(vec![
            Case {
                name: "only when nothing fits free",
                nodes: vec![
                    hold(h100("a", 8), &[0, 1, 2, 3, 4, 5], "low", -5),
                    h100("b", 4),
                ],
                req: at(req(4), 10),
                want: placed("b", &[0, 1, 2, 3]),
            },
            Case {
                name: "fewest victims: one 4-GPU replica rather than two 2-GPU ones",
                nodes: vec![hold(
                    hold(hold(h100("a", 8), &[0, 1, 2, 3], "r1", 0), &[4, 5], "r2", 0),
                    &[6, 7],
                    "r3",
                    0,
                )],
                req: at(req(4), 1),
                want: preempt("a", &[0, 1, 2, 3], &["r1"]),
            },
            Case {
                name: "fewest victims beats lower priority, across nodes",
                nodes: vec![
                    hold(hold(h100("a", 4), &[0, 1], "a1", -10), &[2, 3], "a2", -10),
                    hold(h100("b", 4), &[0, 1, 2, 3], "b1", 5),
                ],
                req: at(req(4), 10),
                want: preempt("b", &[0, 1, 2, 3], &["b1"]),
            },
            Case {
                name: "then the lowest priority",
                nodes: vec![
                    hold(h100("a", 4), &[0, 1, 2, 3], "a1", 5),
                    hold(h100("b", 4), &[0, 1, 2, 3], "b1", 1),
                ],
                req: at(req(4), 10),
                want: preempt("b", &[0, 1, 2, 3], &["b1"]),
            },
            Case {
                name: "then the node name",
                nodes: vec![
                    hold(h100("b", 4), &[0, 1, 2, 3], "b1", 1),
                    hold(h100("a", 4), &[0, 1, 2, 3], "a1", 1),
                ],
                req: at(req(4), 10),
                want: preempt("a", &[0, 1, 2, 3], &["a1"]),
            },
            Case {
                name: "the lowest total priority among sets of the same size, victims sorted",
                nodes: vec![hold(
                    hold(
                        hold(hold(h100("a", 8), &[0, 1, 2], "r4", 0), &[3], "r3", 0),
                        &[4, 5],
                        "r1",
                        -5,
                    ),
                    &[6, 7],
                    "r2",
                    5,
                )],
                // Need 4 with two victims: r4+r3 (0), r4+r1 (-5), r4+r2 (5), r1+r2 (0) -> r1 and r4.
                req: at(req(4), 10),
                want: preempt("a", &[0, 1, 2, 4], &["r1", "r4"]),
            },
            Case {
                name: "free GPUs count towards the block; a victim frees all its GPUs",
                nodes: vec![hold(
                    hold(h100("a", 8), &[0, 1, 2, 3, 4], "big", 0),
                    &[5],
                    "top",
                    50,
                )],
                req: at(req(4), 1),
                want: preempt("a", &[0, 1, 2, 3], &["big"]),
            },
            Case {
                name: "never equal priority",
                nodes: vec![hold(h100("a", 4), &[0, 1, 2, 3], "peer", 3)],
                req: at(req(4), 3),
                want: refused("needs 4 GPUs on one node; none is free (4 held)"),
            },
            Case {
                name: "never higher priority; lower ones too few",
                nodes: vec![hold(
                    hold(h100("a", 4), &[0, 1], "high", 9),
                    &[2, 3],
                    "low",
                    0,
                )],
                req: at(req(4), 3),
                want: refused("needs 4 GPUs on one node; none is free (4 held)"),
            },
            Case {
                name: "a victim's GPUs of another product do not count",
                nodes: vec![
                    hold(
                        Node {
                            name: "mixed".into(),
                            schedulable: true,
                            gpus: vec![gpu(0, H100, 80), gpu(1, A100, 40)],
                        },
                        &[0, 1],
                        "low",
                        0,
                    ),
                    hold(h100("b", 2), &[0], "low2", 1),
                ],
                req: at(of(2, &[H100]), 5),
                want: preempt("b", &[0, 1], &["low2"]),
            },
        ]);
    }

    #[test]
    fn refusals_in_words() {
        run(vec![
            Case {
                name: "zero GPUs",
                nodes: vec![h100("a", 8)],
                req: req(0),
                want: refused("a replica needs at least 1 GPU"),
            },
            Case {
                name: "no nodes",
                nodes: vec![],
                req: req(1),
                want: refused("there are no GPU nodes"),
            },
            Case {
                name: "every node cordoned",
                nodes: vec![cordoned(h100("a", 8)), cordoned(h100("b", 8))],
                req: req(1),
                want: refused("no node is schedulable (2 cordoned)"),
            },
            Case {
                name: "more GPUs than any node has",
                nodes: vec![h100("a", 8), h100("b", 4)],
                req: req(16),
                want: refused("needs 16 GPUs on one node; the largest node has 8"),
            },
            Case {
                name: "more GPUs than any schedulable node has",
                nodes: vec![cordoned(h100("a", 8)), h100("b", 4)],
                req: of(8, &[H100]),
                want: refused("needs 8 GPUs on one node; the largest schedulable node has 4"),
            },
            Case {
                name: "unknown product, with the products present",
                nodes: vec![h100("a", 8), a100("b", 8), h100("c", 8)],
                req: of(1, &["H200"]),
                want: refused("no node has H200 GPUs (products here: A100-40GB, H100-80GB)"),
            },
            Case {
                name: "several unknown products",
                nodes: vec![h100("a", 8)],
                req: of(1, &["H200", "B200"]),
                want: refused("no node has H200 or B200 GPUs (products here: H100-80GB)"),
            },
            Case {
                name: "the product only on a cordoned node",
                nodes: vec![cordoned(a100("a", 8)), h100("b", 8)],
                req: of(1, &[A100]),
                want: refused("no schedulable node has A100-40GB GPUs (products here: H100-80GB)"),
            },
            Case {
                name: "too little memory anywhere",
                nodes: vec![h100("a", 8), a100("b", 8)],
                req: with_memory(req(1), 141),
                want: refused("no GPU has at least 141 GiB (the largest has 80 GiB)"),
            },
            Case {
                name: "too little memory on that product",
                nodes: vec![h100("a", 8), a100("b", 8)],
                req: with_memory(of(1, &[A100]), 80),
                want: refused("no A100-40GB GPU has at least 80 GiB (the largest has 40 GiB)"),
            },
            Case {
                name: "memory not in whole GiB",
                nodes: vec![Node {
                    name: "a".into(),
                    schedulable: true,
                    gpus: vec![Gpu {
                        memory_mib: 81_559,
                        ..gpu(0, H100, 0)
                    }],
                }],
                req: Requirement {
                    min_memory_mib: 81_920,
                    ..req(1)
                },
                want: refused("no GPU has at least 80 GiB (the largest has 79.6 GiB)"),
            },
            Case {
                name: "enough such GPUs, but never on one node",
                nodes: vec![
                    Node {
                        name: "gpu-a".into(),
                        schedulable: true,
                        gpus: (0..8)
                            .map(|i| gpu(i, if i < 2 { H100 } else { A100 }, 80))
                            .collect(),
                    },
                    h100("gpu-b", 1),
                ],
                req: with_memory(of(4, &[H100]), 80),
                want: refused(
                    "needs 4 x H100-80GB with at least 80 GiB on one node; the most on one node is 2 (node gpu-a)",
                ),
            },
            Case {
                name: "the largest free block",
                nodes: vec![
                    hold(h100("gpu-a", 4), &[0, 1], "x", 5),
                    hold(h100("gpu-b", 4), &[0, 1, 2], "y", 5),
                ],
                req: with_memory(of(4, &[H100]), 80),
                want: refused(
                    "needs 4 x H100-80GB with at least 80 GiB on one node; the largest free block is 2 (node gpu-a)",
                ),
            },
            Case {
                name: "the largest free block: ties go to the lowest node name",
                nodes: vec![
                    hold(h100("gpu-b", 4), &[0, 1], "x", 5),
                    hold(h100("gpu-a", 4), &[2, 3], "y", 5),
                ],
                req: req(3),
                want: refused("needs 3 GPUs on one node; the largest free block is 2 (node gpu-a)"),
            },
            Case {
                name: "none free: held and unhealthy",
                nodes: vec![unhealthy(hold(h100("a", 8), &[0, 1, 2, 3, 4, 5], "x", 0), &[6, 7])],
                req: of(1, &[H100]),
                want: refused("needs 1 x H100-80GB on one node; none is free (6 held, 2 unhealthy)"),
            },
            Case {
                name: "none free: all unhealthy",
                nodes: vec![unhealthy(h100("a", 2), &[0, 1])],
                req: req(1),
                want: refused("needs 1 GPU on one node; none is free (2 unhealthy)"),
            },
        ]);
    }

    #[test]
    fn same_input_same_output_whatever_the_order() {
        let nodes = vec![
            hold(h100("n3", 8), &[0, 1, 2, 3, 4, 5], "a", 0),
            hold(h100("n1", 8), &[0, 1, 2, 3, 4, 5], "b", 0),
            h100("n4", 8),
            hold(a100("n2", 8), &[0, 1, 2, 3, 4, 5], "c", 0),
            hold(h100("n0", 8), &[0, 1, 2, 3], "d", 0),
        ];
        let reqs = [req(2), of(2, &[H100]), req(4), req(8), at(req(8), 1)];
        for r in &reqs {
            let first = place(&nodes, r);
            let mut shuffled = nodes.clone();
            for round in 0..nodes.len() * 2 {
                shuffled.rotate_left(1);
                if round % 3 == 0 {
                    shuffled.swap(0, 2);
                }
                assert_eq!(place(&shuffled, r), first, "{r:?}");
            }
        }
        assert_eq!(place(&nodes, &req(2)), placed("n1", &[6, 7]));
        assert_eq!(place(&nodes, &of(2, &[H100])), placed("n1", &[6, 7]));
        assert_eq!(place(&nodes, &req(4)), placed("n0", &[4, 5, 6, 7]));
    }

    #[test]
    fn place_all_applies_each_placement() {
        let nodes = vec![h100("a", 4), h100("b", 8)];
        let reqs = vec![req(2), req(2), req(4), req(8), at(req(6), 7)];
        let (outcomes, after) = place_all(&nodes, &reqs);
        assert_eq!(
            outcomes,
            vec![
                placed("a", &[0, 1]),
                placed("a", &[2, 3]),
                placed("b", &[0, 1, 2, 3]),
                refused("needs 8 GPUs on one node; the largest free block is 4 (node b)"),
                // A replica planned earlier in the pass is a victim; the preemption is not applied.
                preempt("b", &[0, 1, 2, 3, 4, 5], &["r2"]),
            ]
        );
        let holders: Vec<Option<&str>> = after
            .iter()
            .flat_map(|n| &n.gpus)
            .map(|g| g.holder.as_ref().map(|h| h.replica.as_str()))
            .collect();
        assert_eq!(
            holders,
            [
                Some("r0"),
                Some("r0"),
                Some("r1"),
                Some("r1"),
                Some("r2"),
                Some("r2"),
                Some("r2"),
                Some("r2"),
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(
            after[0].gpus[0].holder,
            Some(Holder {
                replica: "r0".into(),
                deployment: "d".into(),
                priority: 0
            })
        );
        // The same decisions one by one.
        let mut step = nodes.clone();
        for (i, r) in reqs.iter().enumerate().take(4) {
            let (one, next) = place_all(&step, std::slice::from_ref(r));
            assert_eq!(one[0], outcomes[i]);
            if let Outcome::Placed { .. } = one[0] {
                assert_eq!(place(&step, r), outcomes[i]);
            }
            step = next;
        }
        assert_eq!(utilisation(&after), 8.0 / 12.0);
    }

    /// A small deterministic fleet and requirement mix: `place_all` agrees with `place` called in turn, and every
    /// outcome keeps the rules, checked here the slow, obvious way.
    #[test]
    fn place_all_agrees_with_place_and_the_rules() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut nodes: Vec<Node> = (0..24)
            .map(|i| {
                let mut n = if next(3) == 0 {
                    a100(&format!("n{i:02}"), 8)
                } else {
                    h100(&format!("n{i:02}"), 4 + 4 * next(2) as u32)
                };
                n.schedulable = next(10) != 0;
                for g in &mut n.gpus {
                    g.healthy = next(20) != 0;
                }
                n
            })
            .collect();
        nodes.reverse();
        let reqs: Vec<Requirement> = (0..120)
            .map(|_| {
                let mut r = req([1, 1, 2, 4, 8][next(5) as usize]);
                r.priority = next(3) as i32;
                match next(4) {
                    0 => r.products = vec!["H100-80GB".into()],
                    1 => r.products = vec!["a100-40gb".into()],
                    2 => r.min_memory_mib = 80 * GIB,
                    _ => {}
                }
                r
            })
            .collect();

        let (outcomes, after) = place_all(&nodes, &reqs);
        let mut state = nodes.clone();
        let eligible = |g: &Gpu, r: &Requirement| {
            g.healthy
                && g.memory_mib >= r.min_memory_mib
                && (r.products.is_empty()
                    || r.products
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(&g.product)))
        };
        let (mut placed, mut preempted, mut refused) = (0, 0, 0);
        for (i, (r, outcome)) in reqs.iter().zip(&outcomes).enumerate() {
            assert_eq!(&place(&state, r), outcome, "requirement {i}");
            let free_on = |n: &Node| {
                n.gpus
                    .iter()
                    .filter(|g| g.holder.is_none() && eligible(g, r))
                    .count()
            };
            match outcome {
                Outcome::Placed { node, gpus } => {
                    placed += 1;
                    assert_eq!(gpus.len(), r.gpus as usize);
                    let chosen = state.iter().find(|n| &n.name == node).unwrap();
                    assert!(chosen.schedulable);
                    // Best fit: no schedulable node had a tighter block that was enough.
                    let tightest = state
                        .iter()
                        .filter(|n| n.schedulable)
                        .map(free_on)
                        .filter(|&f| f >= r.gpus as usize)
                        .min()
                        .unwrap();
                    assert_eq!(free_on(chosen), tightest, "requirement {i}");
                    let n = state.iter_mut().find(|n| &n.name == node).unwrap();
                    for g in n.gpus.iter_mut().filter(|g| gpus.contains(&g.index)) {
                        assert!(g.holder.is_none() && eligible(g, r));
                        g.holder = Some(Holder {
                            replica: format!("r{i}"),
                            deployment: r.deployment.clone(),
                            priority: r.priority,
                        });
                    }
                }
                Outcome::Preempt {
                    node,
                    gpus,
                    victims,
                } => {
                    preempted += 1;
                    assert!(state
                        .iter()
                        .filter(|n| n.schedulable)
                        .all(|n| free_on(n) < r.gpus as usize));
                    let n = state.iter().find(|n| &n.name == node).unwrap();
                    let mut sorted = victims.clone();
                    sorted.sort();
                    assert_eq!(&sorted, victims);
                    for g in n.gpus.iter().filter(|g| gpus.contains(&g.index)) {
                        assert!(eligible(g, r));
                        if let Some(h) = &g.holder {
                            assert!(victims.contains(&h.replica));
                            assert!(h.priority < r.priority);
                        }
                    }
                }
                Outcome::Refused { .. } => refused += 1,
            }
        }
        assert_eq!(after, state);
        // The mix exercises all three outcomes.
        assert!(
            placed > 10 && preempted > 0 && refused > 0,
            "{placed} {preempted} {refused}"
        );
    }

    #[test]
    fn helpers() {
        let nodes = vec![
            unhealthy(hold(h100("a", 8), &[0, 1, 2, 3, 4], "x", 0), &[7]),
            cordoned(h100("b", 8)),
            a100("c", 2),
            hold(h100("d", 4), &[0], "y", 0),
        ];
        assert_eq!(
            free_blocks(&nodes, &req(1)),
            vec![
                FreeBlock {
                    node: "d".into(),
                    free: 3
                },
                FreeBlock {
                    node: "a".into(),
                    free: 2
                },
                FreeBlock {
                    node: "c".into(),
                    free: 2
                },
            ]
        );
        assert_eq!(
            free_blocks(&nodes, &of(1, &["a100-40gb"])),
            vec![FreeBlock {
                node: "c".into(),
                free: 2
            }]
        );
        // 6 held of 21 healthy.
        assert!((utilisation(&nodes) - 6.0 / 21.0).abs() < 1e-12);
        assert_eq!(utilisation(&[]), 0.0);

        // check: the static reasons only, cordoned nodes included.
        assert_eq!(check(&nodes, &req(8)), Ok(()));
        assert_eq!(check(&nodes, &of(8, &[H100])), Ok(()));
        assert_eq!(
            check(&nodes, &req(9)),
            Err("needs 9 GPUs on one node; the largest node has 8".into())
        );
        assert_eq!(
            check(&nodes, &of(3, &[A100])),
            Err("needs 3 x A100-40GB on one node; the most on one node is 2 (node c)".into())
        );
        assert_eq!(
            check(&nodes, &of(1, &["MI300X"])),
            Err("no node has MI300X GPUs (products here: A100-40GB, H100-80GB)".into())
        );
        assert_eq!(
            check(&nodes, &req(0)),
            Err("a replica needs at least 1 GPU".into())
        );
        assert_eq!(check(&[], &req(1)), Err("there are no GPU nodes".into()));
    }

    #[test]
    fn victim_choice_is_exact_and_bounded() {
        // (holder, GPUs, priority)
        let items = [(0, 3, 0), (1, 1, 0), (2, 2, -5), (3, 2, 5)];
        assert_eq!(choose_victims(&items, 4), Some((vec![0, 2], -5)));
        assert_eq!(choose_victims(&items, 1), Some((vec![2], -5)));
        assert_eq!(choose_victims(&items, 8), Some((vec![0, 1, 2, 3], 0)));
        assert_eq!(choose_victims(&items, 9), None);
        // Ties: the earliest items.
        assert_eq!(
            choose_victims(&[(0, 2, 1), (1, 2, 1)], 2),
            Some((vec![0], 1))
        );
        // A node far past real sizes takes the fallback and still answers.
        let many: Vec<(u32, u32, i64)> = (0..2000).map(|i| (i, 1, i64::from(i % 7))).collect();
        let (chosen, _) = choose_victims(&many, 1500).unwrap();
        assert_eq!(chosen.len(), 1500);
    }
}
