//! The allowlist: where a CRM may route calls (`allowed_prefixes`, `allowed_sip_domains`),
//! read from the scheme and checked against every destination, by the component and the host,
//! over the destinations' own parsed SIP address ([`SipAddress`]).

use super::lists::list_items;
use super::{SchemeError, invalid};
use crate::destination::{SipAddress, Target};

/// Where a CRM may route calls: the scheme's `allowed_prefixes` and `allowed_sip_domains`.
/// Both the component and the host check every destination against it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    /// Phone prefixes (digits, no `+`); empty means any phone number.
    pub prefixes: Vec<String>,
    /// SIP domains (lower case); empty means any domain.
    pub sip_domains: Vec<String>,
}

impl Allowlist {
    /// From the entries of the two list fields, each item validated.
    pub(crate) fn from_entries(
        prefixes: Vec<(String, String)>,
        sip_domains: Vec<(String, String)>,
    ) -> Result<Allowlist, SchemeError> {
        let prefixes = list_items(prefixes)
            .into_iter()
            .map(|(key, prefix)| {
                let digits = prefix.strip_prefix('+').unwrap_or(&prefix);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(
                        &key,
                        format!("`{prefix}` is not a phone prefix (digits, optional +)"),
                    ));
                }
                Ok(digits.to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sip_domains = list_items(sip_domains)
            .into_iter()
            .map(|(key, domain)| {
                let valid = !domain.is_empty()
                    && domain.split('.').all(|l| {
                        !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    });
                if !valid {
                    return Err(invalid(&key, format!("`{domain}` is not a domain name")));
                }
                Ok(domain.to_ascii_lowercase())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Allowlist {
            prefixes,
            sip_domains,
        })
    }

    /// Whether a destination is inside the allowlist; `Err` says why not. A phone number must
    /// start with one of `allowed_prefixes`; a SIP address must be at one of
    /// `allowed_sip_domains` (a bare login, dialled at the PBX's own domain, always is), and if
    /// its user part is a telephone number ([`SipAddress::number_user`]) that must start with
    /// one of `allowed_prefixes` too. An empty list allows anything.
    pub fn check(&self, target: &Target) -> Result<(), String> {
        match target {
            Target::Phone(phone) if !self.allows_number(phone) => Err(format!(
                "the CRM routed to {phone}, outside allowed_prefixes"
            )),
            Target::Sip(sip) if !self.prefixes.is_empty() || !self.sip_domains.is_empty() => {
                let address = SipAddress::parse(sip).map_err(|reason| {
                    format!("the CRM routed to an invalid SIP address: {reason}")
                })?;
                if let Some(host) = address.host
                    && !self.sip_domains.is_empty()
                    && !self
                        .sip_domains
                        .iter()
                        .any(|d| d.eq_ignore_ascii_case(host))
                {
                    return Err(format!(
                        "the CRM routed to SIP domain {}, outside allowed_sip_domains",
                        host.to_ascii_lowercase()
                    ));
                }
                match address.number_user() {
                    Some(user) if !self.allows_number(user) => Err(format!(
                        "the CRM routed to SIP user {user}, a phone number outside allowed_prefixes"
                    )),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Whether the digits of `number`, in order and ignoring anything else, start with one of
    /// the prefixes (any number when there are none).
    fn allows_number(&self, number: &str) -> bool {
        self.prefixes.is_empty()
            || self.prefixes.iter().any(|prefix| {
                let mut digits = number.bytes().filter(u8::is_ascii_digit);
                prefix.bytes().all(|p| digits.next() == Some(p))
            })
    }
}
