//! Query text from HTTP clients (`where=`, `pre=`, `order=`): whatever the bytes, parsing is a
//! typed error or a query whose printed form parses back and prints the same — never a panic,
//! a hang or a deep recursion (the parser bounds length and nesting).
#![no_main]

use ate_protocol::{Condition, Order};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Condition::parse(text) {
        let shown = c.to_string();
        let again = Condition::parse(&shown).expect("a printed condition parses");
        assert_eq!(again.to_string(), shown);
    }
    if let Ok(o) = Order::parse(text) {
        let shown = o.to_string();
        let again = Order::parse(&shown).expect("a printed order parses");
        assert_eq!(again, o);
    }
});
