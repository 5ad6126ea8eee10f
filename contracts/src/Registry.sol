// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title medledger directory: admins, hospitals, doctors and patient registrations.
/// @notice Holds public, non-clinical directory data only. A patient registration is the bare
///         account address: no name, birth date or any other personal identifier goes on chain.
/// @dev Every account has at most one role for its whole life (None -> Admin | Patient | Doctor).
contract Registry {
    enum Role {
        None,
        Admin,
        Patient,
        Doctor
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

    event AdminAdded(address indexed account, address indexed addedBy);
    event HospitalAdded(uint64 indexed id);
    event HospitalUpdated(uint64 indexed id);
    event HospitalStatusChanged(uint64 indexed id, bool active);
    event DoctorAdded(address indexed account, uint64 indexed hospitalId);
    event DoctorStatusChanged(address indexed account, bool active);
    event PatientRegistered(address indexed account);

    mapping(address => Role) private _roles;
    mapping(uint64 => Hospital) private _hospitals;
    mapping(address => Doctor) private _doctors;
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

    function addDoctor(
        address account,
        string calldata name,
        string calldata specialty,
        string calldata licenceId,
        uint64 hospitalId
    ) external onlyAdmin {
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
