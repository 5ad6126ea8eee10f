// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @dev The slice of Registry that Consent reads.
interface IConsentRegistry {
    function isPatient(address account) external view returns (bool);
    function isDoctor(address account) external view returns (bool);
    function hospitalExists(uint64 id) external view returns (bool);
    function activeHospitalOf(address account) external view returns (uint64);
}

/// @dev The slice of Records that Consent reads (kind is Records.Kind as its uint8 value).
interface IConsentRecords {
    function recordMeta(bytes32 id) external view returns (address patient, uint8 kind);
}

/// @title medledger consent: grants, emergency declarations and the one access rule.
/// @notice `canAccess` is the rule the server checks before any decryption; `logAccess` records
///         every opening of a record as an event signed by the reader.
contract Consent {
    enum Purpose {
        Treatment,
        Research
    }

    enum Scope {
        All,
        Kinds,
        Records
    }

    /// @dev Exactly one of `doctor` / `hospitalId` is set. `kindsMask` bit i stands for
    ///      Records.Kind i and is kept only for Scope.Kinds; `recordIds` only for Scope.Records.
    struct Grant {
        uint256 id;
        address patient;
        address doctor;
        uint64 hospitalId;
        Scope scope;
        uint8 kindsMask;
        bytes32[] recordIds;
        Purpose purpose;
        uint64 expiresAt;
        bool revoked;
    }

    error NotPatient(address account);
    error UnknownDoctor(address account);
    error UnknownHospital(uint64 id);
    error ExpiryInPast(uint64 expiresAt);
    error EmptyScope();
    error UnknownGrant(uint256 id);
    error NotGrantOwner(uint256 id);
    error AlreadyRevoked(uint256 id);
    error NotActiveDoctor(address account);
    error AccessDenied(address patient, address reader, bytes32 recordId);
    error UnknownRecord(bytes32 id);
    /// @notice A kinds mask with bits set beyond the known record kinds.
    error InvalidKindsMask(uint8 kindsMask);
    /// @notice An emergency declared without a reason hash.
    error ZeroHash();
    error ZeroAddress();
    error ZeroWindow();

    event Granted(
        uint256 indexed id,
        address indexed patient,
        address indexed doctor,
        uint64 hospitalId,
        Purpose purpose,
        uint64 expiresAt
    );
    event Revoked(uint256 indexed id, address indexed patient);
    event EmergencyDeclared(address indexed patient, address indexed doctor, bytes32 reasonHash, uint64 until);
    event AccessLogged(
        address indexed patient, address indexed reader, bytes32 indexed recordId, Purpose purpose, bool emergency
    );

    /// @dev Records.Kind has three members: Report, Prescription, Other.
    uint8 private constant KNOWN_KINDS_MASK = 0x07;

    IConsentRegistry private immutable _registry;
    IConsentRecords private immutable _records;
    uint64 public immutable emergencyWindow;

    mapping(uint256 => Grant) private _grants;
    uint256 private _grantCount;
    mapping(address => uint256[]) private _grantsOf;
    /// @dev grant id => record id => listed, for Scope.Records lookups without a loop.
    mapping(uint256 => mapping(bytes32 => bool)) private _grantCovers;
    /// @dev patient => doctor => emergency end time.
    mapping(address => mapping(address => uint64)) private _emergencyUntil;

    constructor(address registry, address records, uint64 emergencyWindowSeconds) {
        if (registry == address(0) || records == address(0)) revert ZeroAddress();
        if (emergencyWindowSeconds == 0) revert ZeroWindow();
        _registry = IConsentRegistry(registry);
        _records = IConsentRecords(records);
        emergencyWindow = emergencyWindowSeconds;
    }

    // ------------------------------------------------------------------ grants

    function grantDoctor(
        address doctor,
        Scope scope,
        uint8 kindsMask,
        bytes32[] calldata recordIds,
        Purpose purpose,
        uint64 expiresAt
    ) external returns (uint256 id) {
        _requirePatient(msg.sender);
        if (!_registry.isDoctor(doctor)) revert UnknownDoctor(doctor);
        return _createGrant(doctor, 0, scope, kindsMask, recordIds, purpose, expiresAt);
    }

    function grantHospital(
        uint64 hospitalId,
        Scope scope,
        uint8 kindsMask,
        bytes32[] calldata recordIds,
        Purpose purpose,
        uint64 expiresAt
    ) external returns (uint256 id) {
        _requirePatient(msg.sender);
        if (!_registry.hospitalExists(hospitalId)) revert UnknownHospital(hospitalId);
        return _createGrant(address(0), hospitalId, scope, kindsMask, recordIds, purpose, expiresAt);
    }

    function revoke(uint256 id) external {
        Grant storage g = _grantAt(id);
        if (g.patient != msg.sender) revert NotGrantOwner(id);
        if (g.revoked) revert AlreadyRevoked(id);
        g.revoked = true;
        emit Revoked(id, msg.sender);
    }

    // -------------------------------------------------------------- emergency

    function declareEmergency(address patient, bytes32 reasonHash) external {
        if (_registry.activeHospitalOf(msg.sender) == 0) revert NotActiveDoctor(msg.sender);
        _requirePatient(patient);
        if (reasonHash == bytes32(0)) revert ZeroHash();
        uint64 until = uint64(block.timestamp) + emergencyWindow;
        _emergencyUntil[patient][msg.sender] = until;
        emit EmergencyDeclared(patient, msg.sender, reasonHash, until);
    }

    function emergencyUntil(address patient, address doctor) external view returns (uint64) {
        return _emergencyUntil[patient][doctor];
    }

    // ------------------------------------------------------------ access rule

    /// @notice THE access rule. The record must exist and belong to `patient`; the patient may
    ///         always read; anyone else must be an active doctor at an active hospital holding an
    ///         unrevoked, unexpired grant of that purpose whose scope covers the record, or (for
    ///         Treatment only) have declared a still-running emergency for this patient.
    function canAccess(address patient, address reader, bytes32 recordId, Purpose purpose)
        external
        view
        returns (bool)
    {
        (bool allowed,) = _access(patient, reader, recordId, purpose);
        return allowed;
    }

    /// @notice Whether `doctor` may treat `patient` (e.g. anchor a prescription): an active doctor at
    ///         an active hospital with any unrevoked, unexpired Treatment grant from the patient
    ///         (directly or through the hospital, any scope), or a running emergency.
    function canTreat(address patient, address doctor) external view returns (bool) {
        uint64 hospitalId = _registry.activeHospitalOf(doctor);
        if (hospitalId == 0) return false;
        uint256[] storage ids = _grantsOf[patient];
        uint256 n = ids.length;
        for (uint256 i = 0; i < n; ++i) {
            Grant storage g = _grants[ids[i]];
            if (_live(g, doctor, hospitalId, Purpose.Treatment)) return true;
        }
        return _emergencyUntil[patient][doctor] > block.timestamp;
    }

    /// @notice Records an opening of a record by the caller; reverts AccessDenied unless canAccess.
    function logAccess(address patient, bytes32 recordId, Purpose purpose) external {
        (bool allowed, bool emergency) = _access(patient, msg.sender, recordId, purpose);
        if (!allowed) revert AccessDenied(patient, msg.sender, recordId);
        emit AccessLogged(patient, msg.sender, recordId, purpose, emergency);
    }

    // ------------------------------------------------------------------- views

    function registryContract() external view returns (address) {
        return address(_registry);
    }

    function recordsContract() external view returns (address) {
        return address(_records);
    }

    function getGrant(uint256 id) external view returns (Grant memory) {
        return _grantAt(id);
    }

    function grantsOf(address patient) external view returns (uint256[] memory) {
        return _grantsOf[patient];
    }

    function grantCount() external view returns (uint256) {
        return _grantCount;
    }

    // ---------------------------------------------------------------- internal

    function _requirePatient(address account) private view {
        if (!_registry.isPatient(account)) revert NotPatient(account);
    }

    function _grantAt(uint256 id) private view returns (Grant storage g) {
        if (id == 0 || id > _grantCount) revert UnknownGrant(id);
        g = _grants[id];
    }

    function _createGrant(
        address doctor,
        uint64 hospitalId,
        Scope scope,
        uint8 kindsMask,
        bytes32[] calldata recordIds,
        Purpose purpose,
        uint64 expiresAt
    ) private returns (uint256 id) {
        if (expiresAt <= block.timestamp) revert ExpiryInPast(expiresAt);
        id = ++_grantCount;
        Grant storage g = _grants[id];
        g.id = id;
        g.patient = msg.sender;
        g.doctor = doctor;
        g.hospitalId = hospitalId;
        g.scope = scope;
        g.purpose = purpose;
        g.expiresAt = expiresAt;
        if (scope == Scope.Kinds) {
            if (kindsMask & ~KNOWN_KINDS_MASK != 0) revert InvalidKindsMask(kindsMask);
            if (kindsMask == 0) revert EmptyScope();
            g.kindsMask = kindsMask;
        } else if (scope == Scope.Records) {
            uint256 n = recordIds.length;
            if (n == 0) revert EmptyScope();
            for (uint256 i = 0; i < n; ++i) {
                bytes32 recordId = recordIds[i];
                (address owner,) = _records.recordMeta(recordId);
                if (owner != msg.sender) revert UnknownRecord(recordId);
                _grantCovers[id][recordId] = true;
            }
            g.recordIds = recordIds;
        }
        _grantsOf[msg.sender].push(id);
        emit Granted(id, msg.sender, doctor, hospitalId, purpose, expiresAt);
    }

    /// @dev An unrevoked, unexpired grant of `purpose` naming `doctor` or its hospital.
    function _live(Grant storage g, address doctor, uint64 hospitalId, Purpose purpose)
        private
        view
        returns (bool)
    {
        if (g.revoked || g.expiresAt <= block.timestamp || g.purpose != purpose) return false;
        return g.doctor == doctor || (g.hospitalId != 0 && g.hospitalId == hospitalId);
    }

    /// @return allowed whether `reader` may open the record for `purpose`
    /// @return emergency true when access comes only through a declared emergency
    function _access(address patient, address reader, bytes32 recordId, Purpose purpose)
        private
        view
        returns (bool allowed, bool emergency)
    {
        (address owner, uint8 kind) = _records.recordMeta(recordId);
        if (owner == address(0) || owner != patient) return (false, false);
        if (reader == patient) return (true, false);
        uint64 hospitalId = _registry.activeHospitalOf(reader);
        if (hospitalId == 0) return (false, false);
        uint256[] storage ids = _grantsOf[patient];
        uint256 n = ids.length;
        for (uint256 i = 0; i < n; ++i) {
            uint256 id = ids[i];
            Grant storage g = _grants[id];
            if (!_live(g, reader, hospitalId, purpose)) continue;
            Scope scope = g.scope;
            if (
                scope == Scope.All || (scope == Scope.Kinds && (g.kindsMask >> kind) & 1 == 1)
                    || (scope == Scope.Records && _grantCovers[id][recordId])
            ) return (true, false);
        }
        if (purpose == Purpose.Treatment && _emergencyUntil[patient][reader] > block.timestamp) {
            return (true, true);
        }
        return (false, false);
    }
}
