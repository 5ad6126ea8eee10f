// Small progressive enhancements; every page works without this file, except the steps of an
// account whose key is in the person's own wallet (they need the wallet, EIP-1193's
// window.ethereum, and this file).
document.addEventListener("DOMContentLoaded", () => {
  // "Go back" links (inline javascript: URLs are blocked by the Content-Security-Policy).
  for (const a of document.querySelectorAll("a[data-back]")) {
    a.setAttribute("href", "#");
    a.addEventListener("click", (e) => { e.preventDefault(); history.back(); });
  }
  // Ask before actions that cannot be undone.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!confirm(form.dataset.confirm)) e.preventDefault();
    });
  }
  wallet.start();
});

// ---------------------------------------------------------------- the person's own wallet

const wallet = (() => {
  const toHex = (text) =>
    "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
  const quantity = (n) => "0x" + BigInt(n).toString(16);

  async function api(method, path, body) {
    // The page's CSRF token: a change made with the session cookie must carry it.
    const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
    const headers = { "x-csrf-token": csrf };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch { /* no body */ }
    // A sign-in or enrolment started a session: its CSRF token replaces the visitor's.
    if (data && typeof data.csrf === "string") {
      document.querySelector('meta[name="csrf-token"]')?.setAttribute("content", data.csrf);
    }
    return { status: response.status, data };
  }
  const refusal = (data) => new Error(data?.error?.message ?? "the server did not answer; try again");

  function provider() {
    if (!window.ethereum) {
      throw new Error("No wallet was found in this browser: install MetaMask (or another Ethereum wallet) and reload the page.");
    }
    return window.ethereum;
  }

  async function account() {
    const [address] = await provider().request({ method: "eth_requestAccounts" });
    if (!address) throw new Error("Your wallet gave no account: unlock it and try again.");
    return address;
  }

  // A signed Sign-In with Ethereum message for `address`, and its signature of the key message.
  async function proof(address) {
    const { status, data } = await api("POST", "/api/v1/auth/siwe/nonce", { address });
    if (status !== 201) throw refusal(data);
    const sign = (text) => provider().request({ method: "personal_sign", params: [toHex(text), address] });
    const signature = await sign(data.message);
    const key_signature = await sign(data.key_message);
    return { message: data.message, signature, key_signature };
  }

  // Sends a call the server prepared (`PreparedWrite`) from the wallet and completes the write
  // with its hash; a refusal in the wallet cancels it, so nothing is left half-done.
  async function send(w) {
    const address = await account();
    if (address.toLowerCase() !== w.from.toLowerCase()) {
      throw new Error(`Your wallet's account is ${address}; switch it to ${w.from} and try again.`);
    }
    const chain = await provider().request({ method: "eth_chainId" });
    if (BigInt(chain) !== BigInt(w.chain_id)) {
      try {
        await provider().request({ method: "wallet_switchEthereumChain", params: [{ chainId: quantity(w.chain_id) }] });
      } catch {
        throw new Error(`Your wallet is on chain ${BigInt(chain)}, not ${w.chain_id}: add this site's chain to it from the account page.`);
      }
    }
    let hash;
    try {
      hash = await provider().request({
        method: "eth_sendTransaction",
        params: [{ from: w.from, to: w.to, data: w.data, gas: quantity(w.gas), gasPrice: quantity(w.gas_price) }],
      });
    } catch (e) {
      await api("DELETE", `/api/v1/writes/${w.id}`);
      throw new Error(e?.code === 4001
        ? "You rejected the transaction in your wallet: nothing was changed."
        : `Your wallet did not send the transaction (${e?.message ?? e}): nothing was changed.`);
    }
    const { status, data } = await api("POST", `/api/v1/writes/${w.id}`, { tx_hash: hash });
    if (status !== 200) throw refusal(data);
    return data.transaction;
  }

  // A path on this site, or the home page: never another site.
  const local = (next) => (next && next.startsWith("/") && !next.startsWith("//") && !next.includes("\\") ? next : "/");
  // `next` (a local path) showing the transaction's confirmation box.
  const withTx = (next, hash) => {
    const url = new URL(next, location.origin);
    url.searchParams.set("tx", hash);
    return url.pathname + url.search;
  };

  // Runs `work` when `button` is pressed, saying in `status` what happens.
  function on(button, status, work) {
    button.addEventListener("click", async (e) => {
      e.preventDefault();
      button.disabled = true;
      status.classList.remove("error");
      status.textContent = "Waiting for your wallet…";
      try {
        await work();
      } catch (err) {
        status.classList.add("error");
        status.textContent = err.message;
        button.disabled = false;
      }
    });
  }

  const field = (form, name) => form.querySelector(`[name="${name}"]`)?.value.trim() ?? "";

  function start() {
    // A write prepared for the wallet.
    const write = document.querySelector("[data-wallet-write]");
    if (write) {
      const d = write.dataset;
      const prepared = { id: d.id, from: d.from, to: d.to, data: d.data, chain_id: d.chain, gas: d.gas, gas_price: d.gasPrice };
      const status = write.querySelector("[data-wallet-status]");
      on(write.querySelector("[data-wallet-send]"), status, async () => {
        const tx = await send(prepared);
        status.textContent = "Confirmed.";
        location.assign(withTx(d.next, tx.hash));
      });
      write.querySelector("[data-wallet-cancel]").addEventListener("click", async () => {
        await api("DELETE", `/api/v1/writes/${prepared.id}`);
        status.textContent = "Cancelled: nothing was changed.";
      });
    }
    // Sign in.
    for (const button of document.querySelectorAll("[data-wallet-signin]")) {
      const status = document.querySelector(button.dataset.status);
      on(button, status, async () => {
        const body = await proof(await account());
        // An account with a second factor: the code typed in the login form's field.
        const code = document.querySelector(button.dataset.code ?? "")?.value.trim();
        if (code) body.code = code;
        const answer = await api("POST", "/api/v1/auth/siwe", body);
        if (answer.status !== 200) throw refusal(answer.data);
        location.assign(local(button.dataset.next));
      });
    }
    // Sign up (patients) or enrol (doctors, admins) with the wallet, from the form the button
    // is in: the account is stored, then its registration is sent from the wallet.
    for (const button of document.querySelectorAll("[data-wallet-register]")) {
      const form = button.closest("form");
      const status = document.querySelector(button.dataset.status);
      on(button, status, async () => {
        const body = { username: field(form, "username"), wallet: await proof(await account()) };
        for (const name of ["name", "date_of_birth", "contact"]) {
          if (form.querySelector(`[name="${name}"]`)) body[name] = field(form, name);
        }
        const { status: code, data } = await api("POST", button.dataset.walletRegister, body);
        if (code !== 202) throw refusal(data);
        status.textContent = "Your account is stored: confirm its registration in your wallet…";
        const tx = await send(data.wallet);
        location.assign(withTx(button.dataset.next, tx.hash));
      });
    }
    // Move a custodial account to the wallet that holds its (imported) key.
    const move = document.querySelector("[data-wallet-move]");
    if (move) {
      const status = document.querySelector(move.dataset.status);
      on(move, status, async () => {
        const { status: code, data } = await api("POST", "/api/v1/me/wallet", await proof(await account()));
        if (code !== 200) throw refusal(data);
        location.assign("/account?moved=1");
      });
    }
    // Add this site's chain to the wallet (EIP-3085).
    const add = document.querySelector("[data-add-chain]");
    if (add) {
      const status = document.querySelector(add.dataset.status);
      on(add, status, async () => {
        await provider().request({
          method: "wallet_addEthereumChain",
          params: [{
            chainId: quantity(add.dataset.chain),
            chainName: add.dataset.name,
            rpcUrls: [add.dataset.rpc],
            nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
          }],
        });
        status.textContent = "Your wallet has this chain now.";
        add.disabled = false;
      });
    }
  }

  return { start };
})();
