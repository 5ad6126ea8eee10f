// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title medledger directory: admins, hospitals, doctors and patient registrations.
/// @notice Holds public, non-clinical directory data only. A patient registration is the bare
///         account address: no name, birth date or any other personal identifier goes on chain.
/// @dev Every account has at most one role for its whole life (None -> Admin | Patient | Doctor |
///      Researcher).
///      Doctors, admins and researchers join through an invitation: an admin registers an invitation key (an
///      address whose private key only the invitation link carries), and the new person's own
///      account accepts it with a signature by that key over its own address, so nobody who
///      watches the chain can take the invitation, and the admin never holds their key.
contract Registry {
    enum Role {
        None,
        Admin,
        Patient,
        Doctor,
        Researcher
    }

    struct Hospital {
        uint64 id;
        string name;
        string city;
        string addr;
        string specialties;
        string services;
        string contact;
        bool active;
    }

    /// @dev What an invitation makes its acceptor: a Doctor (with this directory entry) or an
    ///      Admin (the strings are then empty).
    struct Invite {
        Role role;
        string name;
        string specialty;
        string licenceId;
        uint64 hospitalId;
        uint64 expiresAt;
        bool used;
        address account;
    }

    struct Doctor {
        address account;
        string name;
        string specialty;
        string licenceId;
        uint64 hospitalId;
        bool active;
    }

    error NotAdmin(address caller);
    error UnknownHospital(uint64 id);
    error UnknownDoctor(address account);
    error AlreadyRegistered(address account);
    error EmptyName();
    error ZeroAddress();
    error AlreadyInState();
    /// @notice `doctorAt` was asked for an index past the end of the doctor list.
    error IndexOutOfRange(uint256 index, uint256 length);
    error UnknownInvite(address inviteKey);
    error InviteExists(address inviteKey);
    error InviteUsed(address inviteKey);
    error InviteExpired(address inviteKey, uint64 expiresAt);
    /// @notice The acceptance was not signed by the invitation's key for this caller.
    error BadInviteSignature();
    error ExpiryInPast(uint64 expiresAt);

    event AdminAdded(address indexed account, address indexed addedBy);
    event HospitalAdded(uint64 indexed id);
    event HospitalUpdated(uint64 indexed id);
    event HospitalStatusChanged(uint64 indexed id, bool active);
    event DoctorAdded(address indexed account, uint64 indexed hospitalId);
    event DoctorStatusChanged(address indexed account, bool active);
    event PatientRegistered(address indexed account);
    event ResearcherAdded(address indexed account);
    event Invited(address indexed inviteKey, Role role, uint64 hospitalId, uint64 expiresAt);
    event InviteAccepted(address indexed inviteKey, address indexed account, Role role);
    event InviteRevoked(address indexed inviteKey);

    mapping(address => Role) private _roles;
    mapping(uint64 => Hospital) private _hospitals;
    mapping(address => Doctor) private _doctors;
    mapping(address => Invite) private _invites;
    address[] private _doctorList;
    uint64 private _hospitalCount;
    uint256 private _patientCount;
    uint256 private _adminCount;

    modifier onlyAdmin() {
        if (_roles[msg.sender] != Role.Admin) revert NotAdmin(msg.sender);
        _;
    }

    constructor() {
        _roles[msg.sender] = Role.Admin;
        _adminCount = 1;
        emit AdminAdded(msg.sender, msg.sender);
    }

    // ------------------------------------------------------------------ admins

    function addAdmin(address account) external onlyAdmin {
        _addAdmin(account);
    }

    function _addAdmin(address account) private {
        if (account == address(0)) revert ZeroAddress();
        if (_roles[account] != Role.None) revert AlreadyRegistered(account);
        _roles[account] = Role.Admin;
        _adminCount += 1;
        emit AdminAdded(account, msg.sender);
    }

    // --------------------------------------------------------------- hospitals

    function addHospital(
        string memory name,
        string memory city,
        string memory addr,
        string memory specialties,
        string memory services,
        string memory contact
    ) external onlyAdmin returns (uint64 id) {
        if (bytes(name).length == 0) revert EmptyName();
        id = ++_hospitalCount;
        Hospital storage h = _hospitals[id];
        h.id = id;
        h.name = name;
        h.city = city;
        h.addr = addr;
        h.specialties = specialties;
        h.services = services;
        h.contact = contact;
        h.active = true;
        emit HospitalAdded(id);
    }

    function updateHospital(
        uint64 id,
        string memory name,
        string memory city,
        string memory addr,
        string memory specialties,
        string memory services,
        string memory contact
    ) external onlyAdmin {
        Hospital storage h = _hospital(id);
        if (bytes(name).length == 0) revert EmptyName();
        h.name = name;
        h.city = city;
        h.addr = addr;
        h.specialties = specialties;
        h.services = services;
        h.contact = contact;
        emit HospitalUpdated(id);
    }

    function suspendHospital(uint64 id) external onlyAdmin {
        _setHospitalActive(id, false);
    }

    function reactivateHospital(uint64 id) external onlyAdmin {
        _setHospitalActive(id, true);
    }

    // ----------------------------------------------------------------- doctors

    /// @notice Adds a doctor whose account (its address) they gave the admin themselves.
    function addDoctor(
        address account,
        string calldata name,
        string calldata specialty,
        string calldata licenceId,
        uint64 hospitalId
    ) external onlyAdmin {
        _addDoctor(account, name, specialty, licenceId, hospitalId);
    }

    // ------------------------------------------------------------- invitations

    /// @notice Invites a doctor: the directory entry to be, waiting for the doctor's own account.
    function inviteDoctor(
        address inviteKey,
        string calldata name,
        string calldata specialty,
        string calldata licenceId,
        uint64 hospitalId,
        uint64 expiresAt
    ) external onlyAdmin {
        if (bytes(name).length == 0) revert EmptyName();
        _hospital(hospitalId);
        _invite(inviteKey, Role.Doctor, expiresAt);
        Invite storage i = _invites[inviteKey];
        i.name = name;
        i.specialty = specialty;
        i.licenceId = licenceId;
        i.hospitalId = hospitalId;
        emit Invited(inviteKey, Role.Doctor, hospitalId, expiresAt);
    }

    /// @notice Invites another admin.
    function inviteAdmin(address inviteKey, uint64 expiresAt) external onlyAdmin {
        _invite(inviteKey, Role.Admin, expiresAt);
        emit Invited(inviteKey, Role.Admin, 0, expiresAt);
    }

    /// @notice Invites a researcher, who may run the studies an admin registers for them and
    ///         never reads a patient's records.
    function inviteResearcher(address inviteKey, uint64 expiresAt) external onlyAdmin {
        _invite(inviteKey, Role.Researcher, expiresAt);
        emit Invited(inviteKey, Role.Researcher, 0, expiresAt);
    }

    /// @notice An admin withdraws an invitation nobody accepted yet.
    function revokeInvite(address inviteKey) external onlyAdmin {
        Invite storage i = _pendingInvite(inviteKey);
        i.used = true;
        emit InviteRevoked(inviteKey);
    }

    /// @notice The caller's new account takes up an invitation, proving it holds the link with
    ///         a signature (EIP-191 personal_sign) by the invitation key over
    ///         keccak256(abi.encode("medledger invite", this contract, chain id, caller)).
    function acceptInvite(address inviteKey, bytes32 r, bytes32 s, uint8 v) external {
        Invite storage i = _pendingInvite(inviteKey);
        if (i.expiresAt <= block.timestamp) revert InviteExpired(inviteKey, i.expiresAt);
        bytes32 inner = keccak256(abi.encode("medledger invite", address(this), block.chainid, msg.sender));
        bytes32 digest = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", inner));
        // Only the lower half of s (EIP-2), so a signature has one form.
        if (uint256(s) > 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0) {
            revert BadInviteSignature();
        }
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0) || signer != inviteKey) revert BadInviteSignature();
        i.used = true;
        i.account = msg.sender;
        if (i.role == Role.Doctor) {
            _addDoctor(msg.sender, i.name, i.specialty, i.licenceId, i.hospitalId);
        } else if (i.role == Role.Researcher) {
            if (_roles[msg.sender] != Role.None) revert AlreadyRegistered(msg.sender);
            _roles[msg.sender] = Role.Researcher;
            emit ResearcherAdded(msg.sender);
        } else {
            _addAdmin(msg.sender);
        }
        emit InviteAccepted(inviteKey, msg.sender, i.role);
    }

    function getInvite(address inviteKey) external view returns (Invite memory) {
        Invite storage i = _invites[inviteKey];
        if (i.role == Role.None) revert UnknownInvite(inviteKey);
        return i;
    }

    function _invite(address inviteKey, Role role, uint64 expiresAt) private {
        if (inviteKey == address(0)) revert ZeroAddress();
        if (_invites[inviteKey].role != Role.None) revert InviteExists(inviteKey);
        if (expiresAt <= block.timestamp) revert ExpiryInPast(expiresAt);
        Invite storage i = _invites[inviteKey];
        i.role = role;
        i.expiresAt = expiresAt;
    }

    function _pendingInvite(address inviteKey) private view returns (Invite storage i) {
        i = _invites[inviteKey];
        if (i.role == Role.None) revert UnknownInvite(inviteKey);
        if (i.used) revert InviteUsed(inviteKey);
    }

    function _addDoctor(
        address account,
        string memory name,
        string memory specialty,
        string memory licenceId,
        uint64 hospitalId
    ) private {
        if (account == address(0)) revert ZeroAddress();
        if (_roles[account] != Role.None) revert AlreadyRegistered(account);
        if (bytes(name).length == 0) revert EmptyName();
        _hospital(hospitalId);
        _roles[account] = Role.Doctor;
        Doctor storage d = _doctors[account];
        d.account = account;
        d.name = name;
        d.specialty = specialty;
        d.licenceId = licenceId;
        d.hospitalId = hospitalId;
        d.active = true;
        _doctorList.push(account);
        emit DoctorAdded(account, hospitalId);
    }

    function suspendDoctor(address account) external onlyAdmin {
        _setDoctorActive(account, false);
    }

    function reactivateDoctor(address account) external onlyAdmin {
        _setDoctorActive(account, true);
    }

    // ---------------------------------------------------------------- patients

    /// @notice The caller registers itself as a patient. Deliberately takes no arguments: personal
    ///         details live encrypted off chain, never here.
    function registerPatient() external {
        if (_roles[msg.sender] != Role.None) revert AlreadyRegistered(msg.sender);
        _roles[msg.sender] = Role.Patient;
        _patientCount += 1;
        emit PatientRegistered(msg.sender);
    }

    // ------------------------------------------------------------------- views

    function roleOf(address account) external view returns (Role) {
        return _roles[account];
    }

    function isAdmin(address account) external view returns (bool) {
        return _roles[account] == Role.Admin;
    }

    function isPatient(address account) external view returns (bool) {
        return _roles[account] == Role.Patient;
    }

    function isResearcher(address account) external view returns (bool) {
        return _roles[account] == Role.Researcher;
    }

    function isDoctor(address account) external view returns (bool) {
        return _roles[account] == Role.Doctor;
    }

    /// @notice True when the doctor is active and so is the hospital it belongs to.
    function isActiveDoctor(address account) external view returns (bool) {
        return _activeHospitalOf(account) != 0;
    }

    /// @notice The hospital id of an active doctor at an active hospital; 0 otherwise.
    function activeHospitalOf(address account) external view returns (uint64) {
        return _activeHospitalOf(account);
    }

    function hospitalExists(uint64 id) external view returns (bool) {
        return id != 0 && id <= _hospitalCount;
    }

    function isActiveHospital(uint64 id) external view returns (bool) {
        return _hospitals[id].active;
    }

    function getHospital(uint64 id) external view returns (Hospital memory) {
        return _hospital(id);
    }

    function hospitalCount() external view returns (uint64) {
        return _hospitalCount;
    }

    function getDoctor(address account) external view returns (Doctor memory) {
        return _doctor(account);
    }

    function doctorCount() external view returns (uint256) {
        return _doctorList.length;
    }

    function doctorAt(uint256 index) external view returns (address) {
        uint256 length = _doctorList.length;
        if (index >= length) revert IndexOutOfRange(index, length);
        return _doctorList[index];
    }

    function patientCount() external view returns (uint256) {
        return _patientCount;
    }

    function adminCount() external view returns (uint256) {
        return _adminCount;
    }

    // ---------------------------------------------------------------- internal

    function _hospital(uint64 id) private view returns (Hospital storage h) {
        if (id == 0 || id > _hospitalCount) revert UnknownHospital(id);
        h = _hospitals[id];
    }

    function _doctor(address account) private view returns (Doctor storage d) {
        if (_roles[account] != Role.Doctor) revert UnknownDoctor(account);
        d = _doctors[account];
    }

    function _activeHospitalOf(address account) private view returns (uint64) {
        if (_roles[account] != Role.Doctor) return 0;
        Doctor storage d = _doctors[account];
        if (!d.active || !_hospitals[d.hospitalId].active) return 0;
        return d.hospitalId;
    }

    function _setHospitalActive(uint64 id, bool active) private {
        Hospital storage h = _hospital(id);
        if (h.active == active) revert AlreadyInState();
        h.active = active;
        emit HospitalStatusChanged(id, active);
    }

    function _setDoctorActive(address account, bool active) private {
        Doctor storage d = _doctor(account);
        if (d.active == active) revert AlreadyInState();
        d.active = active;
        emit DoctorStatusChanged(account, active);
    }
}
