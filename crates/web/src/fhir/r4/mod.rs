//! The rules of FHIR R4 (4.0.1) as this server applies them, with no IO: no state, no request,
//! nothing awaited. What a search parameter means, how a page and its Bundle are counted, how
//! ids are written and read back, and how the domain's views are written as resources all live
//! here, so that each can be tested on plain values; the handlers around it (`super`) only read
//! through `App` and hand what they read to these.

pub(crate) mod capability;
pub(crate) mod clinical;
pub(crate) mod consent;
pub(crate) mod directory;
pub(crate) mod ids;
pub(crate) mod matching;
pub(crate) mod model;
pub(crate) mod resources;
pub(crate) mod search;
