//! Durability of the simulated exchange: the snapshot and journal it is opened from, replayed
//! mutation by mutation, and what each state change commits to them.

use super::*;

impl Simulator {
    /// The exchange kept in `path` (a snapshot) and `<path>.journal`: loads it if present,
    /// else starts fresh from the seed. Every later mutating call is journaled before it
    /// returns. The seed and balances of a loaded state win over `config`; the knobs
    /// (latency, slippage, probabilities) come from `config`.
    pub fn open(path: &Path, config: SimConfig) -> Result<Simulator, SimStoreError> {
        let (mut store, snapshot, journal) = Store::open(path)?;
        let mut sim =
            match snapshot {
                Some(snapshot) => Simulator::from_snapshot(config, snapshot)
                    .map_err(|reason| SimStoreError::Corrupt { path: path.to_path_buf(), line: 1, reason })?,
                None => Simulator::new(config),
            };
        for (i, mutation) in journal.into_iter().enumerate() {
            if mutation.seq > sim.seq {
                sim.replay(mutation).map_err(|reason| SimStoreError::Corrupt {
                    path: store.journal_path().to_path_buf(),
                    line: i + 1,
                    reason,
                })?;
            }
        }
        // Fold what was replayed into a fresh snapshot, so the journal starts empty.
        sim.write_snapshot(&mut store)
            .map_err(|source| SimStoreError::Io { path: store.journal_path().to_path_buf(), source })?;
        sim.store = Some(store);
        Ok(sim)
    }

    pub(super) fn from_snapshot(config: SimConfig, s: SnapshotIn) -> Result<Simulator, String> {
        let mut sim = Simulator::new(SimConfig { seed: s.seed, ..config });
        sim.set_rng_position(&s.rng_word_pos)?;
        for book in s.books {
            if let Some(m) = sim.markets.iter_mut().find(|m| m.rules.symbol == book.symbol) {
                m.book = book;
            }
        }
        sim.balances = s.balances;
        for m in 0..sim.markets.len() {
            let (base, quote) = (sim.markets[m].rules.base_asset.clone(), sim.markets[m].rules.quote_asset.clone());
            asset_index(&mut sim.balances, &base);
            asset_index(&mut sim.balances, &quote);
        }
        for order in s.closed.into_iter().chain(s.open) {
            sim.restore_order(order);
        }
        sim.trades = s.trades.into();
        sim.next_order_id = s.next_order_id;
        sim.next_trade_id = s.next_trade_id;
        sim.seq = s.seq;
        Ok(sim)
    }

    pub(super) fn set_rng_position(&mut self, word_pos: &str) -> Result<(), String> {
        let pos: u128 = word_pos.parse().map_err(|_| format!("bad RNG position '{word_pos}'"))?;
        self.rng = ChaCha8Rng::seed_from_u64(self.seed);
        self.rng.set_word_pos(pos);
        Ok(())
    }

    pub(super) fn replay(&mut self, m: MutationIn) -> Result<(), String> {
        self.set_rng_position(&m.rng_word_pos)?;
        self.seq = m.seq;
        self.next_order_id = m.next_order_id;
        self.next_trade_id = m.next_trade_id;
        for p in m.prices {
            if let Some(market) = self.markets.iter_mut().find(|x| x.rules.symbol == p.symbol) {
                market.book.bid = p.bid;
                market.book.ask = p.ask;
            }
        }
        for b in m.balances {
            let i = asset_index(&mut self.balances, &b.asset);
            self.balances[i] = b;
        }
        for order in m.orders {
            self.restore_order(order);
        }
        let last_trade = self.trades.back().map_or(0, |t| t.id);
        self.trades.extend(m.trades.into_iter().filter(|t| t.id > last_trade));
        self.trim_history();
        Ok(())
    }

    /// Puts a loaded order where it belongs (open or closed), replacing an older version.
    pub(super) fn restore_order(&mut self, order: SimOrder) {
        let id = order.report.exchange_order_id;
        if order.report.status.is_open() {
            self.open_by_client.insert(order.report.client_order_id.clone(), id);
            self.open.insert(id, order);
            return;
        }
        if let Some(prev) = self.open.remove(&id) {
            if self.open_by_client.get(&prev.report.client_order_id) == Some(&id) {
                self.open_by_client.remove(&prev.report.client_order_id);
            }
        }
        self.closed_by_client.insert(order.report.client_order_id.clone(), id);
        if self.closed.insert(id, order).is_none() {
            self.closed_fifo.push_back(id);
        }
    }

    pub(super) fn write_snapshot(&self, store: &mut Store) -> std::io::Result<()> {
        let snapshot = SnapshotOut {
            version: crate::exchange::sim::store::SNAPSHOT_VERSION,
            seq: self.seq,
            seed: self.seed,
            rng_word_pos: self.rng.get_word_pos().to_string(),
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            books: self.markets.iter().map(|m| &m.book).collect(),
            balances: &self.balances,
            open: self.open.values().collect(),
            closed: self.closed_fifo.iter().filter_map(|id| self.closed.get(id)).collect(),
            trades: self.trades.iter().collect(),
        };
        store.write_snapshot(&snapshot)
    }

    /// A copy of the whole state, for a background snapshot.
    pub(super) fn owned_snapshot(&self) -> SnapshotIn {
        SnapshotIn {
            version: crate::exchange::sim::store::SNAPSHOT_VERSION,
            seq: self.seq,
            seed: self.seed,
            rng_word_pos: self.rng.get_word_pos().to_string(),
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            books: self.markets.iter().map(|m| m.book.clone()).collect(),
            balances: self.balances.clone(),
            open: self.open.values().cloned().collect(),
            // Only recent history: the copy is made on the order path, and a bigger one (with
            // its serialisation competing for one of two cores) stalled orders (docs/perf/journal.md).
            closed: self
                .closed_fifo
                .iter()
                .skip(self.closed_fifo.len().saturating_sub(SNAPSHOT_HISTORY))
                .filter_map(|id| self.closed.get(id))
                .cloned()
                .collect(),
            trades: self.trades.iter().skip(self.trades.len().saturating_sub(SNAPSHOT_HISTORY)).cloned().collect(),
        }
    }

    /// Waits until a background snapshot, if any, is on disk.
    pub fn wait_for_snapshot(&mut self) {
        if let Some(store) = self.store.as_mut() {
            store.wait_for_snapshot();
        }
    }

    /// Journals what the call changed and forgets history beyond the bounds.
    pub(super) fn commit(&mut self) -> Result<(), SimError> {
        if !self.dirty.any {
            return Ok(());
        }
        self.seq += 1;
        let mut outcome = Ok(());
        if let Some(mut store) = self.store.take() {
            let record = MutationOut {
                seq: self.seq,
                rng_word_pos: self.rng.get_word_pos().to_string(),
                next_order_id: self.next_order_id,
                next_trade_id: self.next_trade_id,
                prices: self
                    .dirty
                    .prices
                    .iter()
                    .filter_map(|&i| self.markets.get(i))
                    .map(|m| PriceRecord { symbol: m.rules.symbol.clone(), bid: m.book.bid, ask: m.book.ask })
                    .collect(),
                balances: self.dirty.assets.iter().filter_map(|&i| self.balances.get(i)).collect(),
                orders: self
                    .dirty
                    .orders
                    .iter()
                    .filter_map(|id| self.open.get(id).or_else(|| self.closed.get(id)))
                    .collect(),
                trades: self.trades.iter().skip(self.trades.len().saturating_sub(self.dirty.trades)).collect(),
            };
            if let Err(e) = store.append(&record) {
                outcome = Err(SimError::internal(&format!("journal write failed: {e}")));
            } else if store.records >= self.config.compact_every.max(1) {
                // The journal already holds everything; a failed snapshot only delays folding.
                if let Err(e) = store.snapshot_in_background(self.owned_snapshot()) {
                    log::warn!("simulator snapshot failed: {e}");
                }
            }
            self.store = Some(store);
        }
        self.dirty.clear();
        self.trim_history();
        outcome
    }

    pub(super) fn trim_history(&mut self) {
        let forgotten = self.closed_fifo.len().saturating_sub(CLOSED_ORDERS_KEPT);
        for id in self.closed_fifo.drain(..forgotten) {
            if let Some(order) = self.closed.remove(&id) {
                if self.closed_by_client.get(&order.report.client_order_id) == Some(&id) {
                    self.closed_by_client.remove(&order.report.client_order_id);
                }
            }
        }
        while self.trades.len() > TRADES_KEPT {
            self.trades.pop_front();
        }
    }
}
