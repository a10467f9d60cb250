/** CertificateInfo: an OPC UA client application certificate as the page shows it. */
export interface CertificateInfo {
  thumbprint: string;
  subject: string;
  applicationUri: string;
  /** when the file appeared in its folder (first seen for rejected ones) */
  firstSeen: number;
  validTo: number | null;
  status: "trusted" | "rejected";
}

/**
 * CertificateTrust: the trust list of the OPC UA listener, without knowing node-opcua.
 * Unknown client certificates land in "rejected"; an admin trusts, revokes or removes them.
 */
export interface CertificateTrust {
  list(): Promise<CertificateInfo[]>;
  trust(thumbprint: string): Promise<void>;
  /** move a trusted certificate back to rejected */
  revoke(thumbprint: string): Promise<void>;
  /** forget a rejected certificate */
  remove(thumbprint: string): Promise<void>;
}
