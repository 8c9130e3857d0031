//! The fault plan: scripted, reproducible failures. Each fault names the step it targets, what
//! happens, on which matching request it first fires (`nth`, counted from when it was added)
//! and how many times in a row (`times`).
//!
//! Flag syntax: `STEP:KIND[:ARG][@N][xK]`, e.g. `place:5xx-after-execute@2`, `stop:reject x3`,
//! `query:delay-after-execute:8000`, `any:429:7`, `any:skew:-3000`.

use serde_json::{json, Value};

/// Which requests a fault watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `POST /api/v3/order` with `type=MARKET`.
    Place,
    /// `POST /api/v3/order` with `type=STOP_LOSS` or `STOP_LOSS_LIMIT`.
    Stop,
    /// `GET /api/v3/order`.
    Query,
    /// `DELETE /api/v3/order`.
    Cancel,
    /// `GET /api/v3/openOrders`.
    OpenOrders,
    /// `DELETE /api/v3/openOrders`.
    CancelAll,
    /// `POST /api/v3/order/cancelReplace` (any order type): a request of its own, so a
    /// `place` or `stop` fault does not fire on it, nor count it.
    CancelReplace,
    /// `GET /api/v3/allOrders` (start-up reads it for orders the database lacks).
    AllOrders,
    /// `GET /api/v3/account`.
    Account,
    /// `GET /api/v3/exchangeInfo`.
    ExchangeInfo,
    /// `GET /api/v3/time`.
    Time,
    /// `GET /api/v3/myTrades`.
    MyTrades,
    /// Any SIGNED request (order*, openOrders, allOrders, myTrades, account).
    Any,
}

impl Step {
    pub const ALL: [Step; 13] = [
        Step::Place,
        Step::Stop,
        Step::Query,
        Step::Cancel,
        Step::OpenOrders,
        Step::CancelAll,
        Step::CancelReplace,
        Step::AllOrders,
        Step::Account,
        Step::ExchangeInfo,
        Step::Time,
        Step::MyTrades,
        Step::Any,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Place => "place",
            Step::Stop => "stop",
            Step::Query => "query",
            Step::Cancel => "cancel",
            Step::OpenOrders => "open-orders",
            Step::CancelAll => "cancel-all",
            Step::CancelReplace => "cancel-replace",
            Step::AllOrders => "all-orders",
            Step::Account => "account",
            Step::ExchangeInfo => "exchange-info",
            Step::Time => "time",
            Step::MyTrades => "my-trades",
            Step::Any => "any",
        }
    }
    pub fn parse(text: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Execute, then answer 503 / -1007.
    ServerErrorAfterExecute,
    /// Execute, then close the connection without a response.
    DropAfterExecute,
    /// Execute, then answer after this many ms.
    DelayAfterExecute(u64),
    /// Refuse without executing: 429 / -1003 with `Retry-After` of this many seconds.
    TooManyRequests(u64),
    /// Refuse without executing: 418 / -1003 (IP ban) with `Retry-After` of this many seconds.
    Banned(u64),
    /// Refuse once with -1021 (timestamp outside the recvWindow).
    Timestamp,
    /// The server clock runs this many ms off from now on (the request that fires it included).
    Skew(i64),
    /// Refuse with 400 / -2010 "Account has insufficient balance for requested action.".
    Reject,
    /// Refuse a stop with -2010 "Order would trigger immediately." (the market moved first).
    TriggerImmediately,
}

impl FaultKind {
    fn name(self) -> &'static str {
        match self {
            FaultKind::ServerErrorAfterExecute => "5xx-after-execute",
            FaultKind::DropAfterExecute => "drop-after-execute",
            FaultKind::DelayAfterExecute(_) => "delay-after-execute",
            FaultKind::TooManyRequests(_) => "429",
            FaultKind::Banned(_) => "418",
            FaultKind::Timestamp => "1021",
            FaultKind::Skew(_) => "skew",
            FaultKind::Reject => "reject",
            FaultKind::TriggerImmediately => "trigger-immediately",
        }
    }

    fn arg(self) -> Option<i64> {
        match self {
            FaultKind::DelayAfterExecute(v) | FaultKind::TooManyRequests(v) | FaultKind::Banned(v) => {
                Some(i64::try_from(v).unwrap_or(i64::MAX))
            }
            FaultKind::Skew(v) => Some(v),
            _ => None,
        }
    }

    /// `kind` and its argument (`None` when absent).
    pub fn parse(kind: &str, arg: Option<&str>) -> Result<FaultKind, String> {
        let unsigned = |what: &str| -> Result<u64, String> {
            let text = arg.ok_or_else(|| format!("fault kind '{kind}' needs {what}"))?;
            text.trim().parse::<u64>().map_err(|_| format!("fault kind '{kind}': '{text}' is not {what}"))
        };
        let no_arg = |k: FaultKind| -> Result<FaultKind, String> {
            match arg {
                Some(a) => Err(format!("fault kind '{kind}' takes no argument (got '{a}')")),
                None => Ok(k),
            }
        };
        match kind {
            "5xx-after-execute" => no_arg(FaultKind::ServerErrorAfterExecute),
            "drop-after-execute" => no_arg(FaultKind::DropAfterExecute),
            "1021" => no_arg(FaultKind::Timestamp),
            "reject" => no_arg(FaultKind::Reject),
            "trigger-immediately" => no_arg(FaultKind::TriggerImmediately),
            "delay-after-execute" => Ok(FaultKind::DelayAfterExecute(unsigned("a delay in milliseconds")?)),
            "429" => Ok(FaultKind::TooManyRequests(unsigned("a Retry-After in seconds")?)),
            "418" => Ok(FaultKind::Banned(unsigned("a Retry-After in seconds")?)),
            "skew" => {
                let text = arg.ok_or("fault kind 'skew' needs an offset in milliseconds")?;
                text.trim()
                    .parse::<i64>()
                    .map(FaultKind::Skew)
                    .map_err(|_| format!("fault kind 'skew': '{text}' is not a number of ms"))
            }
            other => Err(format!(
                "unknown fault kind '{other}' (5xx-after-execute, drop-after-execute, \
                 delay-after-execute:MS, 429:SECS, 418:SECS, 1021, skew:MS, reject)"
            )),
        }
    }
}

/// One scripted fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub step: Step,
    pub kind: FaultKind,
    /// Fires first on the `nth` matching request (1 = the next one).
    pub nth: u64,
    /// Fires on this many matching requests in a row.
    pub times: u64,
}

/// Strips a trailing `<marker><digits>` (e.g. `@2`, `x3`) and returns the number.
fn strip_count(text: &mut &str, marker: char) -> Result<Option<u64>, String> {
    let Some(pos) = text.rfind(marker) else {
        return Ok(None);
    };
    let digits = text[pos + 1..].trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let n = digits.parse::<u64>().map_err(|_| format!("'{digits}' is too large"))?;
    *text = text[..pos].trim_end();
    Ok(Some(n))
}

impl Fault {
    /// Parses `STEP:KIND[:ARG][@N][xK]` (spaces before `@`/`x` allowed).
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let mut rest = spec.trim();
        let times = strip_count(&mut rest, 'x')?.unwrap_or(1);
        let nth = strip_count(&mut rest, '@')?.unwrap_or(1);
        let mut parts = rest.splitn(3, ':');
        let step_text = parts.next().unwrap_or("").trim();
        let step = Step::parse(step_text).ok_or_else(|| {
            format!(
                "fault '{spec}': unknown step '{step_text}' (place, stop, query, cancel, \
                 open-orders, cancel-all, cancel-replace, all-orders, account, exchange-info, time, \
                 my-trades, any)"
            )
        })?;
        let kind_text = parts
            .next()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| format!("fault '{spec}': expected STEP:KIND[:ARG][@N][xK]"))?;
        let kind =
            FaultKind::parse(kind_text, parts.next().map(str::trim)).map_err(|e| format!("fault '{spec}': {e}"))?;
        Fault::new(step, kind, nth, times).map_err(|e| format!("fault '{spec}': {e}"))
    }

    pub fn new(step: Step, kind: FaultKind, nth: u64, times: u64) -> Result<Fault, String> {
        if nth == 0 {
            return Err("@N counts from 1".into());
        }
        if times == 0 {
            return Err("xK must be at least 1".into());
        }
        Ok(Fault { step, kind, nth, times })
    }

    /// `{"step":"place","kind":"drop-after-execute","arg":null,"nth":1,"times":1}`; `arg`,
    /// `nth` and `times` may be left out; `arg` may be a number or a string; a kind written
    /// `"429:5"` carries its argument.
    pub fn from_json(value: &Value) -> Result<Fault, String> {
        let text = |name: &str| value.get(name).and_then(Value::as_str);
        let step_text = text("step").ok_or("missing \"step\"")?;
        let step = Step::parse(step_text).ok_or_else(|| format!("unknown step '{step_text}'"))?;
        let kind_text = text("kind").ok_or("missing \"kind\"")?;
        let arg = match value.get("arg") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => return Err(format!("\"arg\" must be a number or a string, not {other}")),
        };
        let (kind_name, arg) = match (kind_text.split_once(':'), arg) {
            (Some((name, inline)), None) => (name, Some(inline.to_string())),
            (_, arg) => (kind_text, arg),
        };
        let kind = FaultKind::parse(kind_name, arg.as_deref())?;
        let count = |name: &str| -> Result<u64, String> {
            match value.get(name) {
                None | Some(Value::Null) => Ok(1),
                Some(v) => v.as_u64().ok_or_else(|| format!("\"{name}\" must be a positive integer")),
            }
        };
        Fault::new(step, kind, count("nth")?, count("times")?)
    }

    /// The flag form, e.g. `place:delay-after-execute:8000@2x1`.
    pub fn spec(self) -> String {
        let mut out = format!("{}:{}", self.step.as_str(), self.kind.name());
        if let Some(arg) = self.kind.arg() {
            out.push_str(&format!(":{arg}"));
        }
        out.push_str(&format!("@{}x{}", self.nth, self.times));
        out
    }

    pub fn to_json(self) -> Value {
        json!({
            "step": self.step.as_str(),
            "kind": self.kind.name(),
            "arg": self.kind.arg(),
            "nth": self.nth,
            "times": self.times,
            "spec": self.spec(),
        })
    }
}

#[derive(Debug, Clone)]
struct Rule {
    fault: Fault,
    /// Matching requests seen since the fault was added.
    seen: u64,
    fired: u64,
}

#[derive(Debug, Clone)]
struct Fired {
    spec: String,
    request: String,
    at_ms: i64,
}

/// Fired faults remembered for `GET /sim/fault`.
const FIRED_KEPT: usize = 1_000;

/// The plan: faults in the order they were added, and what fired.
#[derive(Debug, Default)]
pub struct FaultPlan {
    rules: Vec<Rule>,
    fired: Vec<Fired>,
}

impl FaultPlan {
    pub fn add(&mut self, fault: Fault) {
        self.rules.push(Rule { fault, seen: 0, fired: 0 });
    }

    /// Forgets every fault and what fired.
    pub fn clear(&mut self) {
        self.rules.clear();
        self.fired.clear();
    }

    /// Counts a request against every fault watching it and returns the fault that fires, if
    /// any (the earliest added one that is due). `step` is the request's own step (None for
    /// other endpoints); `signed` makes it match `any`.
    pub fn next(&mut self, step: Option<Step>, signed: bool, request: &str, now_ms: i64) -> Option<FaultKind> {
        let mut firing: Option<usize> = None;
        for (i, rule) in self.rules.iter_mut().enumerate() {
            let matches = match rule.fault.step {
                Step::Any => signed,
                s => Some(s) == step,
            };
            if !matches {
                continue;
            }
            rule.seen += 1;
            let due = rule.seen >= rule.fault.nth && rule.fired < rule.fault.times;
            if due && firing.is_none() {
                firing = Some(i);
            }
        }
        let i = firing?;
        let rule = &mut self.rules[i];
        rule.fired += 1;
        let kind = rule.fault.kind;
        if self.fired.len() >= FIRED_KEPT {
            self.fired.remove(0);
        }
        self.fired.push(Fired { spec: rule.fault.spec(), request: request.to_string(), at_ms: now_ms });
        log::info!("fault {} fired on {request}", rule.fault.spec());
        Some(kind)
    }

    /// `{"plan":[…, with "seen" and "fired"], "fired":[{"spec","request","atMs"}]}`.
    pub fn to_json(&self) -> Value {
        json!({
            "plan": self.rules.iter().map(|r| {
                let mut v = r.fault.to_json();
                v["seen"] = json!(r.seen);
                v["fired"] = json!(r.fired);
                v
            }).collect::<Vec<_>>(),
            "fired": self.fired.iter().map(|f| json!({
                "spec": f.spec,
                "request": f.request,
                "atMs": f.at_ms,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_syntax_parses_step_kind_arg_nth_and_times() {
        let f = Fault::parse("place:5xx-after-execute@2").unwrap();
        assert_eq!(f, Fault { step: Step::Place, kind: FaultKind::ServerErrorAfterExecute, nth: 2, times: 1 });
        let f = Fault::parse("stop:reject x3").unwrap();
        assert_eq!((f.step, f.kind, f.nth, f.times), (Step::Stop, FaultKind::Reject, 1, 3));
        let f = Fault::parse("query:delay-after-execute:8000@3x2").unwrap();
        assert_eq!(f.kind, FaultKind::DelayAfterExecute(8000));
        assert_eq!((f.nth, f.times), (3, 2));
        assert_eq!(Fault::parse("any:429:7").unwrap().kind, FaultKind::TooManyRequests(7));
        assert_eq!(Fault::parse("cancel-all:418:120").unwrap().kind, FaultKind::Banned(120));
        assert_eq!(Fault::parse("any:skew:-3000").unwrap().kind, FaultKind::Skew(-3000));
        assert_eq!(Fault::parse("open-orders:1021x2").unwrap().times, 2);
        assert_eq!(Fault::parse("cancel:drop-after-execute").unwrap().kind, FaultKind::DropAfterExecute);
        let f = Fault::parse("cancel-replace:5xx-after-execute@2").unwrap();
        assert_eq!((f.step, f.kind, f.nth), (Step::CancelReplace, FaultKind::ServerErrorAfterExecute, 2));
        // Round trip through the canonical form.
        let f = Fault::parse("query:delay-after-execute:8000@3x2").unwrap();
        assert_eq!(Fault::parse(&f.spec()).unwrap(), f);
    }

    #[test]
    fn bad_specs_are_clear_errors() {
        for bad in [
            "",
            "place",
            "nowhere:reject",
            "place:explode",
            "place:429",
            "place:delay-after-execute:soon",
            "place:reject:5",
            "place:reject@0",
            "place:reject x0",
            "place:skew",
        ] {
            let e = Fault::parse(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
    }

    #[test]
    fn json_form_matches_the_flag_form() {
        let v: Value =
            serde_json::from_str(r#"{"step":"place","kind":"drop-after-execute","arg":null,"nth":1,"times":1}"#)
                .unwrap();
        assert_eq!(Fault::from_json(&v).unwrap(), Fault::parse("place:drop-after-execute").unwrap());
        let v = json!({"step":"query","kind":"delay-after-execute","arg":1500});
        assert_eq!(Fault::from_json(&v).unwrap().kind, FaultKind::DelayAfterExecute(1500));
        let v = json!({"step":"any","kind":"429:3","nth":2,"times":4});
        let f = Fault::from_json(&v).unwrap();
        assert_eq!((f.kind, f.nth, f.times), (FaultKind::TooManyRequests(3), 2, 4));
        assert!(Fault::from_json(&json!({"kind":"reject"})).is_err());
        assert!(Fault::from_json(&json!({"step":"place","kind":"reject","nth":0})).is_err());
        assert!(Fault::from_json(&json!({"step":"place","kind":"reject","arg":[1]})).is_err());
    }

    #[test]
    fn a_fault_fires_on_the_nth_matching_request_k_times() {
        let mut plan = FaultPlan::default();
        plan.add(Fault::parse("place:reject@2x2").unwrap());
        let mut fired = Vec::new();
        for _ in 0..5 {
            // Other steps do not count.
            assert_eq!(plan.next(Some(Step::Query), true, "GET order", 0), None);
            fired.push(plan.next(Some(Step::Place), true, "POST order", 0).is_some());
        }
        assert_eq!(fired, [false, true, true, false, false]);
        let v = plan.to_json();
        assert_eq!(v["plan"][0]["seen"], 5);
        assert_eq!(v["plan"][0]["fired"], 2);
        assert_eq!(v["fired"].as_array().unwrap().len(), 2);
        plan.clear();
        assert_eq!(plan.to_json()["plan"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn any_matches_signed_requests_only_and_the_first_due_fault_wins() {
        let mut plan = FaultPlan::default();
        plan.add(Fault::parse("any:1021").unwrap());
        plan.add(Fault::parse("place:reject").unwrap());
        assert_eq!(plan.next(None, false, "GET time", 0), None);
        assert_eq!(plan.next(Some(Step::Place), true, "POST order", 0), Some(FaultKind::Timestamp));
        // The place fault was due too; it fires next time.
        assert_eq!(plan.next(Some(Step::Place), true, "POST order", 0), Some(FaultKind::Reject));
        assert_eq!(plan.next(Some(Step::Place), true, "POST order", 0), None);
        assert_eq!(plan.next(None, true, "GET account", 0), None);
    }
}
