//! NodeOU roles, as Fabric's MSP classifies identities (`NodeOUs` in an MSP's `config.yaml`).

use std::fmt;
use std::str::FromStr;

/// The organizational-unit role an MSP gives an identity, read from the certificate's OU
/// attribute when NodeOUs are enabled (Fabric `msp.MSPRole` / `NodeOUs`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeOu {
    /// An application or user identity (`OU=client`).
    Client,
    /// A peer node (`OU=peer`).
    Peer,
    /// An organization administrator (`OU=admin`).
    Admin,
    /// An ordering node (`OU=orderer`).
    Orderer,
}

impl NodeOu {
    /// All roles, in Fabric's order.
    pub const ALL: [NodeOu; 4] = [NodeOu::Client, NodeOu::Peer, NodeOu::Admin, NodeOu::Orderer];

    /// The OU string carried in the certificate subject (`client`, `peer`, `admin`, `orderer`).
    pub fn as_str(self) -> &'static str {
        match self {
            NodeOu::Client => "client",
            NodeOu::Peer => "peer",
            NodeOu::Admin => "admin",
            NodeOu::Orderer => "orderer",
        }
    }
}

impl fmt::Display for NodeOu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a string that names no NodeOU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown NodeOU {0:?}: expected client, peer, admin or orderer")]
pub struct UnknownNodeOu(pub String);

impl FromStr for NodeOu {
    type Err = UnknownNodeOu;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "client" => Ok(NodeOu::Client),
            "peer" => Ok(NodeOu::Peer),
            "admin" => Ok(NodeOu::Admin),
            "orderer" => Ok(NodeOu::Orderer),
            _ => Err(UnknownNodeOu(s.to_owned())),
        }
    }
}
